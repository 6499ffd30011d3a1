"""``moments dead-letters --redrive`` stopped part way by Kafka (a topic that stops
progressing): the command fails as Kafka's trouble, says how many letters it had sent
back, and the same command again sends only the rest. Real Kafka; the stall is made by
raising what the replay raises, after two batches of the dead-letter topic."""

from __future__ import annotations

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
