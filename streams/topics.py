"""The contract's topics, and creating them with the configured partitions."""

from __future__ import annotations

import contextlib
import logging

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from streams.kafka_security import client_options
from streams.settings import Settings

log = logging.getLogger(__name__)

TOUCHPOINTS = "touchpoints"
OFFER_OUTCOMES = "offer-outcomes"
NEXT_BEST_OFFERS = "next-best-offers"
INTERVENTIONS = "interventions"
TOUCHPOINTS_DLQ = "touchpoints-dlq"
CUSTOMER_ERASURES = "customer-erasures"  # an extension: one record per erasure request
RISK_EXAMPLES = "risk-examples"  # an extension: labelled feature snapshots, no customer ids
ALL_TOPICS = (
    TOUCHPOINTS, OFFER_OUTCOMES, NEXT_BEST_OFFERS, INTERVENTIONS, TOUCHPOINTS_DLQ,
    CUSTOMER_ERASURES, RISK_EXAMPLES,
)  # fmt: skip
# Erasures are kept for good: `moments rebuild` replays them so that the erased stay
# erased, however old the touchpoints it replays after them (one small record each).
TOPIC_CONFIGS = {CUSTOMER_ERASURES: {"retention.ms": "-1"}}


async def ensure_topics(settings: Settings, partitions: int | None = None) -> list[str]:
    """Create any missing contract topics; returns the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, **client_options())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [t for t in ALL_TOPICS if settings.topic(t) not in existing]
        if not wanted:
            return []
        new = [
            NewTopic(
                settings.topic(name),
                num_partitions=partitions or settings.topic_partitions,
                replication_factor=settings.topic_replication,
                topic_configs=TOPIC_CONFIGS.get(name),
            )
            for name in wanted
        ]
        with contextlib.suppress(TopicAlreadyExistsError):  # another worker was first
            await admin.create_topics(new)
        created = [settings.topic(t) for t in wanted]
        log.info("created topics %s", ", ".join(created))
        return created
    finally:
        await admin.close()


async def topic_partitions(bootstrap: str, topic: str) -> list[int]:
    """The partitions of a topic (subscribing is what makes aiokafka fetch them)."""
    probe = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, **client_options())
    await probe.start()
    try:
        return sorted(probe.partitions_for_topic(topic) or ())
    finally:
        await probe.stop()
