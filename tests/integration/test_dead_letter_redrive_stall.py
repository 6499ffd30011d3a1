"""``moments dead-letters --redrive`` stopped part way by Kafka (a topic that stops
progressing): the command fails as Kafka's trouble, says how many letters it had sent
back, and the same command again sends only the rest. Real Kafka; the stall is made by
raising what the replay raises, after two batches of the dead-letter topic."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from streams import dead_letter_tool
from streams.dead_letter_tool import inspect
from streams.dead_letters import LetterFilter
from streams.services import Services
from streams.settings import Settings
from streams.topic_replay import ReplayStalled
from streams.topics import TOUCHPOINTS, TOUCHPOINTS_DLQ, ensure_topics

pytestmark = pytest.mark.integration

LETTERS = 5


async def test_a_redrive_kafka_stopped_says_what_it_sent_and_the_next_run_sends_the_rest(
    kafka_redis: Services, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(  # a re-drive reads the letters' tombstones in Redis too
        kafka_bootstrap=kafka_redis.kafka_bootstrap, redis_url=kafka_redis.redis_url,
        topic_prefix=f"st{uuid.uuid4().hex[:8]}-",
    )  # fmt: skip
    await ensure_topics(settings)
    await _letters(settings)
    monkeypatch.setattr(dead_letter_tool, "BATCH", 1)
    real_replay = dead_letter_tool.replay

    async def stalls_after_two_batches(
        settings: Settings, topic: str, handle: Any, batch: int, **kwargs: Any
    ) -> int:
        if topic != settings.topic(TOUCHPOINTS_DLQ):
            return await real_replay(settings, topic, handle, batch, **kwargs)
        batches = 0

        async def then_stall(records: Any) -> None:
            nonlocal batches
            batches += 1
            if batches > 2:
                raise ReplayStalled(topic, [0], 120)
            await handle(records)

        return await real_replay(settings, topic, then_stall, batch, **kwargs)

    monkeypatch.setattr(dead_letter_tool, "replay", stalls_after_two_batches)
    everything = LetterFilter()
    # every level of the command's loggers, so that the no-customer-id check sees info
    # and debug lines too (not aiokafka's debug: it dumps whole records, and Moments'
    # processes hold those loggers at info, see streams.logs)
    with caplog.at_level(logging.DEBUG, logger="streams"), pytest.raises(KafkaError):
        await inspect(settings, everything, redrive=True)
    assert "2 letters were sent back before Kafka stopped answering" in caplog.text
    assert "st-cust-" not in caplog.text
    monkeypatch.setattr(dead_letter_tool, "replay", real_replay)
    report = await inspect(settings, everything, redrive=True)
    assert report["redrive"]["redriven"] == LETTERS - 2
    assert report["redrive"]["sent_before"] == 2


async def test_a_redrive_whose_records_kafka_stops_taking_fails_as_kafkas_trouble(
    kafka_redis: Services, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A broker that stops answering while a batch goes back (frozen, cut off): the
    re-drive waited as long as Kafka was away (the idempotent producer never gives a
    batch up); now it fails as Kafka's trouble once DELIVERY_S has passed, having
    recorded what went back, and the next run sends the rest."""
    settings = Settings(kafka_bootstrap=kafka_redis.kafka_bootstrap,
                        redis_url=kafka_redis.redis_url,
                        topic_prefix=f"sd{uuid.uuid4().hex[:8]}-")  # fmt: skip
    await ensure_topics(settings)
    await _letters(settings)
    monkeypatch.setattr(dead_letter_tool, "BATCH", 1)
    monkeypatch.setattr(dead_letter_tool, "DELIVERY_S", 0.5)
    real_send_back = dead_letter_tool.send_back
    sent = 0

    async def never_delivered_after_two(*args: Any) -> Any:
        nonlocal sent
        sent += 1
        if sent > 2:  # taken, never delivered: as a frozen broker does
            return asyncio.get_running_loop().create_future()
        return await real_send_back(*args)

    monkeypatch.setattr(dead_letter_tool, "send_back", never_delivered_after_two)
    with caplog.at_level(logging.INFO, logger="streams"), pytest.raises(KafkaError) as raised:
        await asyncio.wait_for(inspect(settings, LetterFilter(), redrive=True), 60)
    assert "not all delivered within 0.5 s" in str(raised.value)
    assert "2 letters were sent back before Kafka stopped answering" in caplog.text
    monkeypatch.setattr(dead_letter_tool, "send_back", real_send_back)
    report = await inspect(settings, LetterFilter(), redrive=True)
    assert (report["redrive"]["redriven"], report["redrive"]["sent_before"]) == (LETTERS - 2, 2)


async def _letters(settings: Settings) -> None:
    """LETTERS letters of touchpoints, each of its own customer."""
    now_ms = int(time.time() * 1000)
    letters = []
    for n in range(LETTERS):
        value = json.dumps({"type": "web_click", "event_id": f"st-{n}",
                            "customer_id": f"st-cust-{n}", "ts": "2026-01-01T00:00:00Z",
                            "page": "/p"}).encode()  # fmt: skip
        headers = [("source-topic", settings.topic(TOUCHPOINTS).encode()),
                   ("source-partition", b"0"), ("source-offset", str(n).encode()),
                   ("error", b"a fault since fixed"),
                   ("first-handled", str(now_ms).encode())]  # fmt: skip
        letters.append((f"st-cust-{n}".encode(), value, headers))
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for key, value, headers in letters:
            await producer.send(settings.topic(TOUCHPOINTS_DLQ), value, key=key, headers=headers)
        await producer.flush()
    finally:
        await producer.stop()
