"""A batch read again after Redis applied it still finds the customer's newest touchpoint
from before it, though the batch's own burst of touchpoints (more than the recent list
keeps) pushed it out of the store's list: the store kept it beside the first one's id.

Two ways a batch is read again after its apply: its worker stopped (killed, or its
partition moved) before the batch's decisions were recorded, and the next reader decides
them again; or Redis froze with the batch's round trip written, the call timed out, Redis
ran it later, and the retry reads again. Both lost the win-back alert of a valuable
customer back after 120 days (reviewer "exactly", s55). Real Redis."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
import redis.asyncio as aioredis

from agents.batch_result import BatchMemory
from agents.letters import SourceRecord
from agents.touchpoint_handler import TouchpointHandler
from feature_store import FeatureStore, StoreConfig, StoreUnavailable
from feature_store.facts import before_mark, recent_entry
from feature_store.features import RecentTouchpoint
from schemas import Purchase, TouchpointEvent, WebClick, encode_touchpoint
from streams.services import Services
from streams.services.local_redis import LocalRedis
from tests.integration.test_api_support import eventually
from tests.integration.test_foreign_recent_entries import POLICY

pytestmark = pytest.mark.integration

LAPSED_DAYS = 120  # past the win-back's 90 days


def _records(events: list[TouchpointEvent], first_offset: int = 0) -> list[SourceRecord]:
    return [
        SourceRecord("touchpoints", 0, first_offset + n, e.customer_id.encode(),
                     encode_touchpoint(e))
        for n, e in enumerate(events)
    ]  # fmt: skip


def _purchase(now: datetime) -> Purchase:
    return Purchase(event_id="p", customer_id="vip", ts=now - timedelta(days=LAPSED_DAYS),
                    order_id="o1", amount=2000.0, currency="EUR")  # fmt: skip


def _burst(now: datetime, clicks: int, first_offset: int = 1) -> list[SourceRecord]:
    burst = [WebClick(event_id=f"c{n}", customer_id="vip", page="/",
                      ts=now - timedelta(seconds=clicks - n)) for n in range(clicks)]  # fmt: skip
    return _records(burst, first_offset)


@pytest.mark.parametrize("clicks", [5, 25])
async def test_a_burst_read_again_after_its_worker_stopped_still_raises_the_win_back(
    kafka_redis: Services, clicks: int
) -> None:
    """The first worker applies and decides the batch, and stops before it sends or
    records anything; the next one (a restart, the partition's new owner) reads the same
    records. With 5 clicks the purchase stays in the recent list; with 25 it does not."""
    prefix = f"rb{uuid.uuid4().hex[:8]}"
    store = FeatureStore.from_url(kafka_redis.redis_url, StoreConfig(prefix.encode(), prefix))
    now = datetime.now(UTC)
    try:
        first_worker = TouchpointHandler(store, POLICY)
        assert (await first_worker.handle(_records([_purchase(now)]))).dead_letters == []
        batch = _burst(now, clicks)
        first = await first_worker.handle(batch, BatchMemory())
        assert [a.kind for a in first.interventions] == ["win_back"]
        second = await TouchpointHandler(store, POLICY).handle(batch, BatchMemory())
        assert {r for _, r in second.results} == {"duplicate"}  # applied once
        assert [a.kind for a in second.interventions] == ["win_back"]
    finally:
        await store.close()


async def test_a_burst_whose_replies_were_lost_still_raises_the_win_back(
    private_redis: LocalRedis,
) -> None:
    """The retry keeps the batch's BatchMemory, but its first attempt never heard what
    the read of the newest touchpoint before the batch found: it reads again, after Redis
    applied the burst."""
    assert private_redis.process is not None
    pid = private_redis.process.proc.pid
    store = FeatureStore.from_url(private_redis.url, StoreConfig(b"frozen-burst", "fb"),
                                  timeout_s=1.0)  # fmt: skip
    admin = aioredis.Redis.from_url(private_redis.url)
    now = datetime.now(UTC)
    handler = TouchpointHandler(store, POLICY)
    try:
        assert (await handler.handle(_records([_purchase(now)]))).dead_letters == []
        batch = _burst(now, 25)
        memory = BatchMemory()  # kept across the batch's attempts, as BatchRetries keeps it
        os.kill(pid, signal.SIGSTOP)
        try:
            with pytest.raises(StoreUnavailable):
                await asyncio.wait_for(handler.handle(batch, memory), 15)
        finally:
            os.kill(pid, signal.SIGCONT)
        seen = store._keys.for_customer("vip").seen

        async def ran() -> bool:
            return await admin.zscore(seen, "t:c24") is not None

        await eventually(ran, "Redis ran the calls written before it froze")
        assert not memory.newest_before  # the first attempt heard nothing
        result = await asyncio.wait_for(handler.handle(batch, memory), 15)
        assert {r for _, r in result.results} == {"ok"}  # applied by this batch, once
        assert [a.kind for a in result.interventions] == ["win_back"]
    finally:
        await admin.aclose()
        await store.close()


async def test_a_burst_read_again_labels_the_churn_risk_snapshot_as_first_read(
    kafka_redis: Services,
) -> None:
    """The churn-risk snapshot taken at a purchase 60 days ago is waiting for its label;
    a click 31 days ago (within its 30 days) labels nothing. A burst now: the quiet spell
    from that click is 31 days, no lapse of 45, and the 30 days are past: negative. Read
    again after its apply, the click was no longer in the recent list, and the spell was
    counted from the snapshot (60 days: a lapse, positive)."""
    prefix = f"rr{uuid.uuid4().hex[:8]}"
    store = FeatureStore.from_url(kafka_redis.redis_url, StoreConfig(prefix.encode(), prefix))
    now = datetime.now(UTC)
    try:
        worker = TouchpointHandler(store, POLICY)
        bought = Purchase(event_id="p", customer_id="vip", ts=now - timedelta(days=60),
                          order_id="o1", amount=20.0, currency="EUR")  # fmt: skip
        visited = WebClick(event_id="v", customer_id="vip", page="/",
                           ts=now - timedelta(days=31))  # fmt: skip
        for offset, event in enumerate((bought, visited)):
            done = await worker.handle(_records([event], offset), BatchMemory())
            assert done.risk_examples == []  # a snapshot at the purchase, still pending
            await worker.confirm(done)
        batch = _burst(now, 25, first_offset=2)
        first = await worker.handle(batch, BatchMemory())
        assert [e.y for e in first.risk_examples] == [False]
        second = await TouchpointHandler(store, POLICY).handle(batch, BatchMemory())
        assert [e.y for e in second.risk_examples] == [False]
    finally:
        await store.close()


async def test_only_the_first_touchpoint_of_a_burst_keeps_the_one_before_it(
    kafka_redis: Services,
) -> None:
    """A customer's ordinary batches (one touchpoint each, 100 of them within the dedupe
    horizon) leave their ids alone in the seen set, which stays Redis's compact encoding
    (a mark beside each doubled it, past the 128 members a listpack holds); a burst of
    the recent list's length or more marks its first touchpoint alone."""
    prefix = f"rm{uuid.uuid4().hex[:8]}"
    store = FeatureStore.from_url(kafka_redis.redis_url, StoreConfig(prefix.encode(), prefix))
    admin = aioredis.Redis.from_url(kafka_redis.redis_url, decode_responses=True)
    now = datetime.now(UTC)
    seen = store._keys.for_customer("vip").seen
    try:
        singles = [WebClick(event_id=f"s{n}", customer_id="vip", page="/",
                            ts=now - timedelta(hours=100 - n)) for n in range(100)]  # fmt: skip
        for click in singles:
            assert await store.apply([click], newest_before={}) == [1]
        members = await admin.zrange(seen, 0, -1)
        assert len(members) == 100 and not [m for m in members if m.startswith("b:")]
        assert await admin.object("encoding", seen) in ("listpack", "ziplist")
        burst = [WebClick(event_id=f"c{n}", customer_id="vip", page="/",
                          ts=now - timedelta(seconds=30 - n)) for n in range(25)]  # fmt: skip
        other = WebClick(event_id="o", customer_id="other", page="/", ts=now)
        before: dict[str, RecentTouchpoint | None] = {}
        assert await store.apply([*burst, other], newest_before=before) == [1] * 26
        marks = [m for m in await admin.zrange(seen, 0, -1) if m.startswith("b:")]
        assert marks == [before_mark("t:c0", recent_entry(singles[-1]))]
        other_seen = await admin.zrange(store._keys.for_customer("other").seen, 0, -1)
        assert other_seen == ["t:o"]
        # read again after its apply: the kept one, though the burst pushed it out
        again: dict[str, RecentTouchpoint | None] = {}
        assert await store.apply(burst[:3], newest_before=again) == [0] * 3
        kept = before["vip"]
        assert kept is not None and kept.event_id == "s99"
        assert again == {"vip": msgspec.structs.replace(kept, event_id="")}
    finally:
        await admin.aclose()
        await store.close()
