"""Kafka allows a header without a value: a record that has one is applied with its
batch, and neither it nor the events read with it are acked without being applied."""

from __future__ import annotations

import json

import pytest
from aiokafka import AIOKafkaProducer

from tests.integration.conftest import Pipeline
from tests.integration.test_api_support import event, eventually

pytestmark = pytest.mark.integration


async def test_a_header_without_a_value_loses_no_event(pipeline: Pipeline) -> None:
    worker = pipeline.start_worker()
    producer = AIOKafkaProducer(bootstrap_servers=pipeline.services.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for n in range(6):
            value = json.dumps(event("web_click", f"hdr-{n % 2}", f"hdr-e{n}")).encode()
            headers = [("redriven-from", None)] if n == 2 else [("trace", b"t-1")]
            await producer.send(pipeline.topic("touchpoints"), value, key=f"hdr-{n % 2}".encode(),
                                headers=headers)  # fmt: skip
        await producer.flush()
    finally:
        await producer.stop()

    async def all_applied() -> bool:
        return worker.metric("moments_events_total", type="web_click", result="ok") == 6

    await eventually(all_applied, "all six events applied")
    assert worker.metric("moments_dead_letters_total") == 0
    assert worker.proc.poll() is None
