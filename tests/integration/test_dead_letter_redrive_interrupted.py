"""``moments dead-letters --redrive`` stopped part way (Ctrl-C, or a Job's SIGTERM):
what the producer had taken of the batch under way is recorded as sent when delivered,
the command says how many letters went back and exits 130, and the same command again
sends the rest: every letter goes back once. Before, hundreds went back twice (a batch
delivered but not yet recorded), and SIGTERM ended it without a word. Real Kafka and
Redis; the command runs as operators run it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.services import Services
from streams.settings import Settings
from streams.topics import DEAD_LETTER_REDRIVES, TOUCHPOINTS, TOUCHPOINTS_DLQ, ensure_topics

pytestmark = pytest.mark.integration

LETTERS = 6000
STOP_AFTER = 1000  # records sent back before the stop


async def _letters(settings: Settings, letters: int = LETTERS, pad: str = "") -> None:
    now_ms = int(time.time() * 1000)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all",
                                linger_ms=20)  # fmt: skip
    await producer.start()
    try:
        for n in range(letters):
            value = json.dumps({"type": "web_click", "event_id": f"ri-{n}",
                                "customer_id": f"ri-cust-{n % 300}", "page": "/p" + pad,
                                "ts": "2026-01-01T00:00:00Z"}).encode()  # fmt: skip
            headers = [("source-topic", settings.topic(TOUCHPOINTS).encode()),
                       ("source-partition", b"0"), ("source-offset", str(n).encode()),
                       ("error", b"a fault since fixed"),
                       ("first-handled", str(now_ms).encode())]  # fmt: skip
            await producer.send(settings.topic(TOUCHPOINTS_DLQ), value,
                                key=f"ri-cust-{n % 300}".encode(), headers=headers)  # fmt: skip
        await producer.flush()
    finally:
        await producer.stop()


async def _count(consumer: AIOKafkaConsumer, topic: str) -> int:
    partitions = consumer.partitions_for_topic(topic) or set()
    if not partitions:
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic) or set()
    ends = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
    return sum(ends.values())


async def _sent_back(settings: Settings) -> Counter[bytes]:
    """How many times each letter came back to touchpoints (by its redriven-from)."""
    consumer = AIOKafkaConsumer(settings.topic(TOUCHPOINTS), auto_offset_reset="earliest",
                                bootstrap_servers=settings.kafka_bootstrap,
                                isolation_level="read_committed")  # fmt: skip
    await consumer.start()
    found: Counter[bytes] = Counter()
    try:
        total = await _count(consumer, settings.topic(TOUCHPOINTS))
        deadline = time.monotonic() + 60
        while sum(found.values()) < total and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    found.update(v for k, v in record.headers or () if k == "redriven-from")
    finally:
        await consumer.stop()
    return found


@pytest.mark.parametrize(
    ("stop", "letters", "stop_after", "pad"),
    [
        (signal.SIGTERM, LETTERS, STOP_AFTER, ""),
        (signal.SIGINT, LETTERS, STOP_AFTER, ""),
        # large letters: each send waits for the producer's buffer, so the stop lands
        # while the batch's letters are still being handed over (some taken, not all)
        (signal.SIGTERM, 1200, 50, "x" * 20_000),
    ],
    ids=["sigterm", "ctrl-c", "sigterm-while-sending"],
)
async def test_a_redrive_stopped_part_way_sends_every_letter_back_once(
    kafka_redis: Services, stop: signal.Signals, letters: int, stop_after: int, pad: str
) -> None:
    prefix = f"ri{uuid.uuid4().hex[:8]}-"
    settings = Settings(kafka_bootstrap=kafka_redis.kafka_bootstrap,
                        redis_url=kafka_redis.redis_url, topic_prefix=prefix)  # fmt: skip
    await ensure_topics(settings)
    await _letters(settings, letters, pad)
    env = {**os.environ, "MOMENTS_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
           "MOMENTS_REDIS_URL": settings.redis_url, "MOMENTS_TOPIC_PREFIX": prefix,
           "MOMENTS_LOG_LEVEL": "info"}  # fmt: skip
    command = [sys.executable, "-m", "streams.cli", "dead-letters", "--redrive"]
    watch = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await watch.start()
    try:
        first = subprocess.Popen(  # noqa: ASYNC220 (started, then watched)
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )  # fmt: skip
        while first.poll() is None:
            if await _count(watch, settings.topic(TOUCHPOINTS)) >= stop_after:
                break
            await asyncio.sleep(0.02)
        first.send_signal(stop)
        _, err = await asyncio.to_thread(first.communicate, timeout=60)
        said = err.decode()
        sent_then = await _count(watch, settings.topic(TOUCHPOINTS))
        recorded_then = await _count(watch, settings.topic(DEAD_LETTER_REDRIVES))
    finally:
        await watch.stop()
    assert first.returncode == 130, said
    assert stop_after <= sent_then < letters, sent_then  # stopped part way
    assert f"stopped: {recorded_then} letters were sent back" in said, said
    assert "ri-cust-" not in said
    assert recorded_then == sent_then  # what went back was recorded, and only that

    again = await asyncio.to_thread(subprocess.run, command, env=env, capture_output=True,
                                    timeout=300)  # fmt: skip
    assert again.returncode == 0, again.stderr.decode()
    report = json.loads(again.stdout)["redrive"]
    assert (report["redriven"], report["sent_before"]) == (letters - sent_then, sent_then)
    back = await _sent_back(settings)
    assert len(back) == letters and set(back.values()) == {1}, Counter(back.values())


async def test_a_redrive_redis_does_not_answer_exits_as_a_service_away(
    kafka_redis: Services,
) -> None:
    """Redis away is a service that cannot answer now (exit 3, run it again later), as
    for `moments rebuild`, not a refused setting (2): a wrapper retries the one and
    alerts on the other."""
    prefix = f"rh{uuid.uuid4().hex[:8]}-"
    settings = Settings(kafka_bootstrap=kafka_redis.kafka_bootstrap,
                        redis_url=kafka_redis.redis_url, topic_prefix=prefix)  # fmt: skip
    await ensure_topics(settings)
    await _letters(settings, 3)
    env = {**os.environ, "MOMENTS_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
           "MOMENTS_REDIS_URL": "redis://127.0.0.1:1/0",  # nothing listens there
           "MOMENTS_TOPIC_PREFIX": prefix}  # fmt: skip
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "streams.cli", "dead-letters", "--redrive"],
        env=env, capture_output=True, timeout=120,
    )  # fmt: skip
    said = done.stderr.decode()
    assert done.returncode == 3, said
    assert "Redis cannot say whether the customers of the next letters were erased" in said
    assert "0 letters were sent back before" in said
