"""Kafka and Redis restart mid-stream: processing pauses and resumes, nothing is lost."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tests.integration.conftest import Pipeline, Worker
from tests.integration.test_api_support import eventually, metric_total
from tests.integration.test_scale_out import (
    activity,
    applied,
    assert_reference_state,
    reference,
    spread,
)
from tests.integration.test_touchpoints_pipeline import CUSTOMERS, good_events, produce

pytestmark = pytest.mark.integration


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


async def produced(pipeline: Pipeline) -> int:
    """Records on the touchpoints topic so far (the sum of its partitions' end offsets)."""
    topic = pipeline.topic("touchpoints")
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=pipeline.services.kafka_bootstrap)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        assert partitions, f"{topic} has no partitions"
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return sum(ends.values())
    finally:
        await consumer.stop()


async def all_handled(pipeline: Pipeline, wait_s: float = 60.0) -> None:
    """Wait until the workers committed every touchpoint produced so far: a batch is
    committed only once Kafka acknowledged its decisions, alerts and letters, so then
    whatever they sent is on the topics (a fixed sleep proved nothing on a slow run)."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if await committed(pipeline) >= await produced(pipeline):
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"the workers did not commit every touchpoint within {wait_s}s")


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


async def test_kafka_then_redis_restart_mid_stream(private_pipeline: Pipeline) -> None:
    services = private_pipeline.services
    assert services.kafka is not None and services.redis is not None
    events = spread(good_events(6_000, seed=71), seed=72)
    expected = reference(events)
    worker = private_pipeline.start_worker()

    # Kafka goes away and comes back: the worker waits and carries on by itself.
    await send(private_pipeline, events[:2000])
    await wait_for(private_pipeline, 500, 60)
    await asyncio.to_thread(services.kafka.restart)
    await send(private_pipeline, events[2000:4000])
    await wait_for(private_pipeline, activity(events[:4000]), 120)

    # Redis goes away: nothing is committed past what was applied, then it carries on.
    async def all_committed() -> int:
        done = await committed(private_pipeline)
        return done if done == await produced(private_pipeline) else 0

    stalled = await eventually(all_committed, "the worker to commit all it was sent", 60)
    retried = metric_total(worker, "moments_batch_retries_total")
    await asyncio.to_thread(services.redis.stop)
    await send(private_pipeline, events[4000:])

    async def trying_again() -> bool:
        return metric_total(worker, "moments_batch_retries_total") > retried

    # the worker took a batch of the new events, could not apply it, and retries it
    await eventually(trying_again, "the worker to retry a batch while Redis is down", 60)
    await asyncio.sleep(4)  # commit rounds go by (one a second) while the batch is retried
    assert await committed(private_pipeline) == stalled, "committed while Redis was down"
    await asyncio.to_thread(services.redis.start)
    await wait_for(private_pipeline, activity(events), 120)
    await asyncio.sleep(2)
    await assert_reference_state(private_pipeline, expected)
    # the outage in the log: when it began and when it ended, not a line per retry
    lines = worker.log_path.read_text().splitlines()
    began = [line for line in lines if "not done (StoreUnavailable" in line]
    assert 1 <= len(began) <= 2 and any("events done after" in line for line in lines), began


async def test_a_broker_away_is_logged_now_and_then_not_at_every_retry(
    private_pipeline: Pipeline,
) -> None:
    """aiokafka logs each failed attempt to reach the broker, ten a second per client: a
    worker and an API with the broker away for 25 s wrote thousands of lines (15 s
    here). Each kind of line now comes once per 30 s (the next says how many were held
    back)."""
    kafka = private_pipeline.services.kafka
    assert kafka is not None
    worker = private_pipeline.start_worker()
    processes = [worker, private_pipeline.start_api()]
    await asyncio.to_thread(kafka.stop)
    away_since = time.monotonic()

    async def worker_says_kafka_is_away() -> dict[str, object] | None:
        status, body = await asyncio.to_thread(worker.get, "/readyz")
        answer = json.loads(body)
        return answer if status == 503 and answer["checks"]["kafka"] != "ok" else None

    # its partitions stay assigned while the group cannot meet: readiness said "ok"
    answer = await eventually(worker_says_kafka_is_away, "the worker's /readyz to fail", 12)
    assert answer["checks"] == {  # type: ignore[index]
        "redis": "ok",
        "kafka": "down: the group coordinator does not answer",
    }
    await asyncio.sleep(15 - (time.monotonic() - away_since))
    await asyncio.to_thread(kafka.restart)
    for process in processes:

        async def ready(process: Worker = process) -> bool:
            return (await asyncio.to_thread(process.get, "/readyz"))[0] == 200

        await eventually(ready, "back by itself once the broker is", 60)
        assert process.proc.poll() is None
        lines = process.log_path.read_text().splitlines()
        unreachable = [line for line in lines if "Unable connect to node" in line]
        assert 1 <= len(unreachable) <= 2, unreachable[:5]
        assert len([line for line in lines if "ERROR" in line]) < 20, lines[-20:]
    api = processes[1]

    async def api_says_kafka_is_back() -> list[str] | None:
        lines = api.log_path.read_text().splitlines()
        return lines if any("Kafka is reachable again, after" in line for line in lines) else None

    lines = await eventually(api_says_kafka_is_back, "the API to log that Kafka is back", 30)
    assert len([line for line in lines if "Kafka cannot be used" in line]) == 1, lines[-20:]
