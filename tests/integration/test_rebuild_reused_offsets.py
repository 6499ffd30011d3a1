"""``moments rebuild`` after Kafka gave offsets of ``touchpoints`` again (a partition that
lost its tail: an unclean leader election, a replication factor of 1 with a lost disk, a
restore from backup; or the topic made again while ``touchpoints-dlq`` was kept): the
letters of the records lost name places that good records hold now."""

from __future__ import annotations

import json

import pytest
from aiokafka import AIOKafkaProducer

from agents.letters import SourceRecord, dead_letter_headers
from streams.services import LocalRedis
from tests.integration.conftest import Pipeline
from tests.integration.test_api_support import event, read_to_end
from tests.integration.test_rebuild_records import rebuilt
from tests.integration.test_service_restarts import all_handled
from tests.integration.test_touchpoints_pipeline import produce

pytestmark = pytest.mark.integration


async def test_a_letter_naming_an_offset_given_again_holds_out_no_good_record(
    pipeline: Pipeline, private_redis: LocalRedis
) -> None:
    """The live worker applied a consent withdrawal and a click at places that letters of
    records lost before name (one refused as malformed, one whose update failed): the
    rebuild applies both, as live did, rather than contact a customer who opted out. A
    record the worker refused itself stays out."""
    bootstrap = pipeline.services.kafka_bootstrap
    pipeline.start_worker()
    customer = "ro-cust"
    events = [
        event("consent", customer, "ro-grant", minutes_ago=30, channel="email", granted=True),
        event("web_click", customer, "ro-1", minutes_ago=25),
        event("web_click", customer, "ro-2", minutes_ago=20),
        event("consent", customer, "ro-withdraw", minutes_ago=15, channel="email", granted=False),
        event("web_click", customer, "ro-3", minutes_ago=10),
    ]
    records = [(customer.encode(), json.dumps(e).encode()) for e in events]
    records.append((customer.encode(), b'{"type": "web_click", "event_id": "ro-4"'))  # malformed
    await produce(bootstrap, pipeline.topic("touchpoints"), records)
    await all_handled(pipeline, 120)
    live = pipeline.store()
    try:
        seen = await live.read(customer)
    finally:
        await live.close()
    assert seen is not None and seen.events == len(events) and not seen.consents_to("email")

    # the letters of the records that held the withdrawal's and a click's places before
    written = await read_to_end(bootstrap, pipeline.topic("touchpoints"))
    withdrawal, click = written[3], written[4]
    lost = [
        (withdrawal, b'{"type": "consent", "event_id"', "invalid: malformed JSON: truncated"),
        (click, json.dumps(event("web_click", customer, "ro-lost")).encode(),
         "feature update failed: ResponseError: WRONGTYPE"),
    ]  # fmt: skip
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for record, value, error in lost:
            gone = SourceRecord(record.topic, record.partition, record.offset, record.key, value)
            headers = dead_letter_headers(gone, error)
            await producer.send_and_wait(
                pipeline.topic("touchpoints-dlq"), value, key=record.key, headers=headers
            )
    finally:
        await producer.stop()

    report, store = await rebuilt(pipeline, private_redis)
    try:
        view = await store.read(customer)
        assert view is not None and view.events == seen.events, (view, report)
        assert not view.consents_to("email")
        # the malformed record alone (its own letter, written by the worker)
        assert (report.touchpoints, report.skipped_invalid) == (len(records), 1)
    finally:
        await store.close()
