"""Kafka allows a header without a value, and a header name that is not UTF-8: a record
that has one is applied with its batch, and neither it nor the events read with it are
acked without being applied."""

from __future__ import annotations

import json
import struct

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.record.util import calc_crc32c

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


async def test_a_header_name_that_is_not_utf8_stalls_nothing(pipeline: Pipeline) -> None:
    """Kafka takes any bytes as a header name (a Go producer may write them): the record
    and those after it are applied, the bad one dead-lettered only if its event is."""
    worker = pipeline.start_worker()
    topic = pipeline.topic("touchpoints")
    producer = AIOKafkaProducer(bootstrap_servers=pipeline.services.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        partitions = sorted(await producer.partitions_for(topic))
        for n, value in enumerate([b"not json", *[b""] * 3]):
            value = value or json.dumps(event("web_click", "hdr-x", f"hdr-x{n}")).encode()
            batch = producer.create_batch()
            batch.append(key=b"hdr-x", value=value, timestamp=None, headers=[("zz", b"v")])
            batch.close()
            if n in (0, 1):  # written with the name's bytes FF FE, as no aiokafka producer can
                batch._buffer = _named_ff_fe(batch._build())
            await (await producer.send_batch(batch, topic, partition=partitions[0]))
    finally:
        await producer.stop()

    async def all_handled() -> bool:
        applied = worker.metric("moments_events_total", type="web_click", result="ok")
        return applied == 3 and worker.metric("moments_dead_letters_total") == 1

    await eventually(all_handled, "three events applied, the one not JSON dead-lettered")
    assert worker.proc.poll() is None


def _named_ff_fe(built: bytes) -> bytes:
    """The batch with its header name ``zz`` written as the bytes FF FE (CRC made anew)."""
    raw = bytearray(built)
    at = raw.find(b"zz")
    raw[at : at + 2] = b"\xff\xfe"
    struct.pack_into(">I", raw, 17, calc_crc32c(bytes(raw[21:])))
    return bytes(raw)
