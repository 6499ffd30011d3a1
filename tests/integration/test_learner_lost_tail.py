"""A learner whose snapshot's position is past the end of its topic, on real Kafka and
Redis: the log lost its tail but kept its offsets (an unclean leader election, a Kafka
restored from an older backup; here the topic is made again holding its first records).
The consumer reads the partition again from its beginning; the examples the model
learned already are skipped, the ones written since are learned, and it is counted."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from agents.risk_watch import RiskHolder
from streams.metrics import Metrics
from streams.model_snapshots import RISK
from streams.risk_learner import RiskLearner
from streams.services import Services
from tests.integration.test_learner_topics import _lead_until, _published, _send, _store, _topic

pytestmark = pytest.mark.integration


async def _made_again(bootstrap: str, topic: str) -> None:
    """Delete ``topic`` and create it again, empty (deletion takes a moment to finish)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([topic])
        for _ in range(100):
            try:
                await admin.create_topics([NewTopic(topic, 1, 1)])
                return
            except KafkaError:  # still being deleted
                await asyncio.sleep(0.2)
        raise AssertionError(f"{topic} could not be made again")
    finally:
        await admin.close()


async def test_examples_the_log_lost_and_kept_are_learned_once(kafka_redis: Services) -> None:
    bootstrap = kafka_redis.kafka_bootstrap
    topic = await _topic(bootstrap)
    ids = [f"risk:{uuid.uuid4().hex[:24]}:1796126400000" for _ in range(50)]
    await _send(bootstrap, topic, ids)
    store = _store(kafka_redis)
    try:
        first = RiskLearner(store, RiskHolder(), Metrics(), bootstrap, topic, publish_every_s=0.2)
        await _lead_until(first, lambda: first.examples == 50)
        assert await _published(store) == (50, {"0": 50})
        # the log keeps its first 30 records, at the same offsets; 5 new ones come after
        await _made_again(bootstrap, topic)
        await _send(bootstrap, topic, ids[:30])
        await _send(bootstrap, topic, [f"risk:{uuid.uuid4().hex[:24]}:1" for _ in range(5)])
        metrics = Metrics()
        second = RiskLearner(store, RiskHolder(), metrics, bootstrap, topic, publish_every_s=0.2)
        await _lead_until(second, lambda: second.examples >= 55, settle_s=3.0)
        assert second.examples == 55
        assert await _published(store) == (55, {"0": 35})
        rewinds = metrics.registry.get_sample_value(
            "moments_learner_rewinds_total", {"model": RISK}
        )
        assert rewinds == 1
    finally:
        await store.close()
