"""Existing topics get Moments' topic configs where they follow the broker's defaults."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from streams.settings import Settings
from streams.topics import (
    ALL_TOPICS,
    CUSTOMER_ERASURES,
    DEAD_LETTER_REDRIVES,
    TopicsRefused,
    ensure_topics,
)

pytestmark = pytest.mark.integration


async def _made(bootstrap: str, topics: list[NewTopic]) -> None:
    """Make ``topics`` as an older Moments, an operator or a producer would, and wait
    until the broker's metadata lists them, as at a restart."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(topics)
        for _ in range(100):
            if {t.name for t in topics} <= set(await admin.list_topics()):
                break
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


async def _make_erasures_topic(bootstrap: str, configs: dict[str, str]) -> Settings:
    """A ``customer-erasures`` topic as an older Moments (or an operator) made it."""
    settings = Settings(kafka_bootstrap=bootstrap, topic_prefix=f"cfg-{uuid.uuid4().hex[:8]}-")
    await _made(bootstrap, [NewTopic(settings.topic(CUSTOMER_ERASURES), 1, 1,
                                     topic_configs=configs)])  # fmt: skip
    return settings


async def _described(bootstrap: str, topic: str) -> dict[str, dict[str, Any]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic)]
        )
    finally:
        await admin.close()
    entries = described.to_object()["resources"][0]["config_entries"]
    return {e["config_names"]: e for e in entries}


async def _configs(bootstrap: str, topic: str) -> dict[str, str]:
    return {name: e["config_value"] for name, e in (await _described(bootstrap, topic)).items()}


async def test_a_new_erasures_topic_is_made_to_keep_erasures_for_good(kafka_bootstrap: str) -> None:
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap, topic_prefix=f"cfg-{uuid.uuid4().hex[:8]}-"
    )
    created = await ensure_topics(settings)
    for topic in (CUSTOMER_ERASURES, DEAD_LETTER_REDRIVES):
        assert settings.topic(topic) in created
        described = await _described(kafka_bootstrap, settings.topic(topic))
        for name in ("retention.ms", "retention.bytes"):  # on the topic, whatever the broker's
            assert described[name]["config_value"] == "-1", (topic, name)
            assert described[name]["config_source"] == 1, (topic, name)  # DYNAMIC_TOPIC_CONFIG


async def test_an_erasures_topic_without_a_retention_of_its_own_keeps_erasures_for_good(
    kafka_bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    # made without retention.ms: the broker's default would delete erasure records
    settings = await _make_erasures_topic(kafka_bootstrap, {"max.message.bytes": "2000000"})
    topic = settings.topic(CUSTOMER_ERASURES)
    assert (await _configs(kafka_bootstrap, topic))["retention.ms"] != "-1"

    with caplog.at_level(logging.WARNING, logger="streams.topics"):
        created = await ensure_topics(settings)
    assert topic not in created and len(created) == len(ALL_TOPICS) - 1
    configs = await _configs(kafka_bootstrap, topic)
    assert configs["retention.ms"] == "-1"
    assert configs["max.message.bytes"] == "2000000"  # the topic's own setting survives
    assert f"topic {topic} followed the broker's defaults" in caplog.text

    caplog.clear()  # the next start finds nothing to do
    with caplog.at_level(logging.WARNING, logger="streams.topics"):
        assert await ensure_topics(settings) == []
    assert caplog.text == ""


async def test_a_retention_the_operator_set_on_the_topic_is_kept_with_a_warning(
    kafka_bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = await _make_erasures_topic(kafka_bootstrap, {"retention.ms": "86400000"})
    topic = settings.topic(CUSTOMER_ERASURES)
    with caplog.at_level(logging.WARNING, logger="streams.topics"):
        await ensure_topics(settings)
    assert (await _configs(kafka_bootstrap, topic))["retention.ms"] == "86400000"
    assert f"topic {topic} has retention.ms=86400000 set on it" in caplog.text


async def test_topics_the_broker_refuses_to_create_are_an_error_not_created(
    kafka_bootstrap: str,
) -> None:
    """The broker answers a refusal per topic without an error; it was logged as created,
    and the topics came later with the broker's defaults (customer-erasures with its
    default retention), auto-created by the first client to use them."""
    settings = Settings(kafka_bootstrap=kafka_bootstrap, topic_replication=3,
                        topic_prefix=f"cfg-{uuid.uuid4().hex[:8]}-")  # fmt: skip
    with pytest.raises(TopicsRefused, match=r"replication factor of 3.*MOMENTS_TOPIC_REPLICATION"):
        await ensure_topics(settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        assert not {settings.topic(t) for t in ALL_TOPICS} & set(await admin.list_topics())
    finally:
        await admin.close()


async def test_a_touchpoints_topic_with_fewer_partitions_than_the_setting_is_warned_of(
    kafka_bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Made with the broker's default of one partition (a producer's first send), it let
    one worker take part: the others were never ready, and a rollout stalled, unsaid."""
    settings = Settings(kafka_bootstrap=kafka_bootstrap, topic_partitions=4,
                        topic_prefix=f"few-{uuid.uuid4().hex[:8]}-")  # fmt: skip
    await _made(kafka_bootstrap, [NewTopic(settings.topic("touchpoints"), 1, 1)])
    with caplog.at_level(logging.WARNING, logger="streams.topics"):
        await ensure_topics(settings)
    assert "has 1 partitions, fewer than MOMENTS_TOPIC_PARTITIONS (4)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="streams.topics"):
        await ensure_topics(Settings(kafka_bootstrap=kafka_bootstrap, topic_partitions=1,
                                     topic_prefix=settings.topic_prefix))  # fmt: skip
    assert "fewer than" not in caplog.text


async def test_event_topics_kept_otherwise_than_moments_needs_are_warned_of(
    kafka_bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A compacted touchpoints topic (keyed by customer: only each one's newest record
    kept; a rebuild lost a withdrawal seconds old, exit 0) and one kept for ever (a
    consumer group reset applied purchases older than the dedupe horizon again) were
    taken as they were, unsaid."""
    settings = Settings(kafka_bootstrap=kafka_bootstrap,
                        topic_prefix=f"kept-{uuid.uuid4().hex[:8]}-")  # fmt: skip
    made = {
        "touchpoints": {"cleanup.policy": "compact", "retention.ms": "-1"},
        "next-best-offers": {"cleanup.policy": "compact,delete"},
        "interventions": {"retention.ms": str(3 * 86_400_000)},  # fine
    }
    await _made(kafka_bootstrap, [NewTopic(settings.topic(t), 1, 1, topic_configs=c)
                                  for t, c in made.items()])  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="streams.topic_checks"):
        await ensure_topics(settings)
    said = [r.getMessage() for r in caplog.records if r.name == "streams.topic_checks"]
    assert not [m for m in said if "could not read" in m], said  # those not made yet: no word
    touchpoints = [m for m in said if m.startswith(f"topic {settings.topic('touchpoints')}:")]
    assert len(touchpoints) == 3, said  # compacted, and longer than both horizons
    assert any("for 8 days (MOMENTS_DEDUPE_HORIZON_DAYS)" in m for m in touchpoints)
    assert any("for 400 days (MOMENTS_TOMBSTONE_DAYS)" in m for m in touchpoints)
    assert [m for m in said if settings.topic("next-best-offers") in m and "compacted" in m]
    assert not [m for m in said if settings.topic("interventions") in m]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="streams.topic_checks"):
        await ensure_topics(Settings(kafka_bootstrap=kafka_bootstrap))  # made as wanted
    assert not [r for r in caplog.records if r.name == "streams.topic_checks"]


async def test_processes_starting_together_each_say_only_what_they_made(
    kafka_bootstrap: str,
) -> None:
    """Two processes starting at the same moment both logged that they created all ten
    topics (those the broker answered "already exists" were counted as made)."""
    settings = Settings(kafka_bootstrap=kafka_bootstrap,
                        topic_prefix=f"both-{uuid.uuid4().hex[:8]}-")  # fmt: skip
    first, second = await asyncio.gather(ensure_topics(settings), ensure_topics(settings))
    assert sorted(first + second) == sorted(settings.topic(t) for t in ALL_TOPICS)
