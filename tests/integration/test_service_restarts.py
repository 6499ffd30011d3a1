"""Kafka and Redis restart mid-stream: processing pauses and resumes, nothing is lost."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from streams.services import LocalKafka, LocalRedis, Services
from tests.integration.conftest import Pipeline
from tests.integration.test_scale_out import (
    activity,
    applied,
    assert_reference_state,
    reference,
    spread,
)
from tests.integration.test_touchpoints_pipeline import CUSTOMERS, good_events, produce

pytestmark = pytest.mark.integration


@pytest.fixture
def private(tmp_path: Path) -> Iterator[Pipeline]:
    """Kafka and Redis of this test's own, so they can be restarted."""
    kafka, redis_ = LocalKafka(tmp_path / "kafka"), LocalRedis(tmp_path / "redis")
    redis_.start()
    kafka.start()
    p = Pipeline(Services(kafka.bootstrap, redis_.url, "local", kafka, redis_), tmp_path)
    try:
        yield p
    finally:
        p.stop()
        kafka.stop()
        redis_.stop()


async def committed(pipeline: Pipeline) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=pipeline.services.kafka_bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(f"{pipeline.prefix}moments")
        return sum(
            meta.offset for tp, meta in offsets.items()
            if tp.topic == pipeline.topic("touchpoints") and meta.offset > 0
        )  # fmt: skip
    finally:
        await admin.close()


async def wait_for(pipeline: Pipeline, count: int, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if await applied(pipeline, CUSTOMERS) >= count:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"fewer than {count} events applied within {wait_s}s")


async def send(pipeline: Pipeline, events: list[dict[str, object]]) -> None:
    records = [(str(e["customer_id"]).encode(), json.dumps(e).encode()) for e in events]
    await produce(pipeline.services.kafka_bootstrap, pipeline.topic("touchpoints"), records)


async def test_kafka_then_redis_restart_mid_stream(private: Pipeline) -> None:
    services = private.services
    assert services.kafka is not None and services.redis is not None
    events = spread(good_events(12_000, seed=71), seed=72)
    expected = reference(events)
    private.start_worker()

    # Kafka goes away and comes back: the worker waits and carries on by itself.
    await send(private, events[:4000])
    await wait_for(private, 1000, 60)
    await asyncio.to_thread(services.kafka.restart)
    await send(private, events[4000:8000])
    await wait_for(private, activity(events[:8000]), 120)

    # Redis goes away: nothing is committed past what was applied, then it carries on.
    await asyncio.to_thread(services.redis.stop)
    await send(private, events[8000:])
    await asyncio.sleep(4)  # the worker is retrying its batch now
    stalled = await committed(private)
    await asyncio.sleep(4)
    assert await committed(private) == stalled, "offsets were committed while Redis was down"
    assert stalled <= 8000, "committed past events that could not be applied"
    await asyncio.to_thread(services.redis.start)
    await wait_for(private, activity(events), 120)
    await asyncio.sleep(2)
    await assert_reference_state(private, expected)
