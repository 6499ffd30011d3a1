"""An API process that starts (every deploy) reads back the newest alerts of every
partition, not ``backlog / partitions`` of each: a screen that resumes on it after being
away gets the alerts made meanwhile, and is told of a gap only where alerts of its queue
left the buffer. It used to read back 125 per partition (4 partitions, a buffer of 500):
one customer's burst (one partition) of far fewer than 500 lost alerts still in Kafka,
told as a gap to every queue."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid

import pytest
from aiokafka import AIOKafkaProducer

from streams.api.alerts import AlertHub
from streams.api.screen_feed import StreamPosition
from streams.services import Services
from tests.integration.test_alert_hub_reconnect import REFS, FanOut, fan_out
from tests.integration.test_api_support import eventually

pytestmark = pytest.mark.integration
BACKLOG = 10  # the buffer; the test topics have 2 partitions


def alert(n: int, queue: str) -> bytes:
    return json.dumps({
        "intervention_id": f"iv-{n}", "customer_id": f"customer-{n}",
        "ts": "2026-12-01T10:00:00Z", "kind": "retention_call", "priority": 1,
        "queue": queue, "trigger_event_id": None, "reasons": [],
        "suggested_action": "Call them.",
    }).encode()  # fmt: skip


async def send(rig: FanOut, partition: int, numbers: range, queue: str) -> None:
    for n in numbers:  # one partition, as one customer's alerts are
        await rig.producer.send(rig.alerts_topic, alert(n, queue), partition=partition)
    await rig.producer.flush()


async def new_process(kafka_redis: Services, rig: FanOut) -> AlertHub:
    """The fan-out of an API process started anew on the same topics."""
    hub = AlertHub(kafka_redis.kafka_bootstrap, rig.alerts_topic, rig.erasures_topic,
                   rig.store.erased, REFS, backlog=BACKLOG)  # fmt: skip
    await hub.start()
    await asyncio.wait_for(hub.ready.wait(), 30)
    return hub


async def buffered(hub: AlertHub, position: StreamPosition, wanted: int) -> list[str]:
    """The ids a screen at ``position`` is sent from the buffer, once ``wanted`` are
    there (or 5 s passed): the read-back alerts are published just after ready."""

    async def enough() -> bool:
        return len(hub.since(position, None)) >= wanted

    with contextlib.suppress(AssertionError):  # fewer: the caller's assertion says which
        await eventually(enough, "the buffered alerts", within=5.0, every=0.05)
    return [a.intervention.intervention_id for a in hub.since(position, None)]


async def test_a_screen_resuming_after_a_restart_gets_a_busy_partitions_alerts(
    kafka_redis: Services,
) -> None:
    async with fan_out(kafka_redis, backlog=BACKLOG) as rig:
        await rig.hub.stop()
        await send(rig, 0, range(1), "vip")
        left_at = StreamPosition({0: 0})  # the screen was sent iv-0, and went
        await send(rig, 0, range(1, 9), "billing")  # 8 < BACKLOG, > BACKLOG / 2
        hub = await new_process(kafka_redis, rig)
        try:
            got = await buffered(hub, left_at, 8)
            assert got == [f"iv-{n}" for n in range(1, 9)]
            assert hub.behind(left_at, None) == hub.behind(left_at, "vip") == []  # no gap
        finally:
            await hub.stop()


async def test_the_newest_of_every_partition_are_kept_and_a_gap_told_to_their_queue(
    kafka_redis: Services,
) -> None:
    async with fan_out(kafka_redis, backlog=BACKLOG) as rig:
        await rig.hub.stop()
        await send(rig, 0, range(1), "vip")
        left_at = StreamPosition({0: 0})
        await send(rig, 0, range(1, 9), "billing")
        await asyncio.sleep(0.05)  # later record times
        await send(rig, 1, range(9, 17), "billing")
        hub = await new_process(kafka_redis, rig)
        try:
            # a screen opened now: the newest BACKLOG of all, partition 0's oldest left out
            fresh = await buffered(hub, StreamPosition(), BACKLOG)
            assert sorted(fresh) == sorted(f"iv-{n}" for n in [7, 8, *range(9, 17)])
            # vip's screen missed none of its own (iv-1..iv-6 were billing's)
            assert [b.missed for b in hub.behind(left_at, "vip")] == [False]
            assert [b.missed for b in hub.behind(left_at, None)] == [True]
            assert [b.missed for b in hub.behind(left_at, "billing")] == [True]
        finally:
            await hub.stop()


async def test_a_transaction_left_open_does_not_hold_the_start(kafka_redis: Services) -> None:
    async with fan_out(kafka_redis, backlog=BACKLOG) as rig:
        await rig.hub.stop()
        await send(rig, 0, range(3), "vip")
        transactional = AIOKafkaProducer(bootstrap_servers=kafka_redis.kafka_bootstrap,
                                         transactional_id=f"tx-{uuid.uuid4().hex[:8]}")  # fmt: skip
        await transactional.start()
        try:
            await transactional.begin_transaction()
            await transactional.send_and_wait(rig.alerts_topic, alert(3, "vip"), partition=0)
            await send(rig, 0, range(4, 6), "vip")  # behind the open transaction
            began = time.monotonic()
            hub = await new_process(kafka_redis, rig)
            try:
                assert time.monotonic() - began < 3  # read back to where it holds
                assert await buffered(hub, StreamPosition(), 3) == ["iv-0", "iv-1", "iv-2"]
                await transactional.commit_transaction()
                got = await buffered(hub, StreamPosition(), 6)
                assert got == [f"iv-{n}" for n in range(6)]
            finally:
                await hub.stop()
        finally:
            await transactional.stop()
