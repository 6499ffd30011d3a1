"""The feature store on a real three-master Redis Cluster started locally."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from feature_store import (
    BudgetSpend,
    DecisionRecord,
    FeatureStore,
    RecentTouchpoint,
    StoreConfig,
    recent_touchpoint_of,
    risk_fact,
    touchpoint_fact,
)
from feature_store.reference import CustomerState
from schemas import Consent, Email, Purchase, TouchpointEvent, WebClick
from streams.services.local_redis import LocalRedisCluster

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)


def test_store_on_cluster_matches_reference_and_erases(cluster: LocalRedisCluster) -> None:
    async def scenario() -> None:
        client = aioredis.RedisCluster.from_url(cluster.url, decode_responses=True)
        store = FeatureStore(client, StoreConfig(secret=b"cluster"), clock=lambda: NOW.timestamp())
        customers = [f"cluster-cust-{i}" for i in range(60)]
        events = []
        for i in range(600):
            customer = customers[i % len(customers)]
            ts = NOW - timedelta(minutes=7 * i)
            if i % 3:
                events.append(WebClick(event_id=f"c{i}", customer_id=customer, ts=ts, page="/",
                                       category="books"))  # fmt: skip
            else:
                events.append(Purchase(event_id=f"c{i}", customer_id=customer, ts=ts,
                                       order_id=f"o{i}", amount=9.99, currency="EUR"))  # fmt: skip
        reference: dict[str, CustomerState] = defaultdict(CustomerState)
        now_ms = int(NOW.timestamp() * 1000)
        want = [reference[e.customer_id].apply(touchpoint_fact(e), now_ms) for e in events]
        got = []
        for start in range(0, len(events), 100):
            got += [int(s) for s in await store.apply(events[start : start + 100])]
        assert got == want
        assert all(s == 0 for s in await store.apply(events[:100]))
        # the customers really are spread over the three masters
        slots = {await client.cluster_keyslot(f"m:{{{store.pseudonym(c)}}}:p") for c in customers}
        owners = {client.get_node_from_key(f"m:{{{store.pseudonym(c)}}}:p").name for c in customers}
        assert len(slots) > 30 and len(owners) == 3
        for customer in customers:
            raw = await store.raw(customer)
            assert raw["profile"] == reference[customer].profile
            assert raw["windows"] == reference[customer].windows
            assert raw["recent"] == reference[customer].recent
        features = await store.read_many(customers)
        assert all(f is not None and f.events == 10 for f in features)
        receipt = await store.erase(customers[0])
        assert receipt.keys_removed == 4
        assert set(receipt.kinds) == {"profile", "windows", "seen", "recent"}
        assert await store.read(customers[0]) is None
        # who is erased, over tombstones on every master, in one call
        assert await store.erased(customers) == [True] + [False] * (len(customers) - 1)
        # a customer who withdrew: their withdrawals stay beside the tombstone, in their
        # slot, and are read back on whichever master holds it
        said_stop = customers[-1]
        stops: list[TouchpointEvent] = [
            Consent(event_id="s1", customer_id=said_stop, ts=NOW, channel="sms", granted=False),
            Email(event_id="s2", customer_id=said_stop, ts=NOW, action="unsubscribed"),
        ]
        assert await store.apply(stops) == [1, 1]
        kept = await store.erase(said_stop)
        assert kept.withdrawals_kept == ["consent:sms", "subscribed:email"]
        assert await store.withdrawals_kept(said_stop) == ["consent:sms", "subscribed:email"]
        assert await store.withdrawals_kept(customers[0]) == []  # withdrew nothing
        tag = store.pseudonym(said_stop)
        assert await client.cluster_keyslot(f"m:{{{tag}}}:supp") == await client.cluster_keyslot(
            f"m:{{{tag}}}:erased"
        )
        # daily offer budgets, read with the features of a batch as the API does
        day = NOW.date()
        spends = [BudgetSpend(day, f"d{n}", ("voucher",)) for n in range(2)]
        spends.append(BudgetSpend(day + timedelta(days=1), "d2", ("voucher",)))
        assert await store.budgets.add(spends) == 3
        assert await store.budgets.add(spends[:1]) == 0  # counted once
        views, spent = await asyncio.gather(
            store.read_for_decisions(customers[1:4]), store.budgets.spent(day)
        )
        assert spent == {"voucher": 2} and [erased for erased, _ in views] == [False] * 3
        # a burst: each customer's newest touchpoint before it, read first on their master
        burst = [WebClick(event_id=f"b{n}", customer_id=c, ts=NOW + timedelta(seconds=n),
                          page="/") for n in range(25) for c in customers[1:3]]  # fmt: skip
        before: dict[str, RecentTouchpoint | None] = {}
        assert await store.apply(burst, newest_before=before) == [1] * 50
        assert before == {
            c: recent_touchpoint_of(events[i]) for i, c in ((1, customers[1]), (2, customers[2]))
        }
        await store.close()

    asyncio.run(scenario())


def test_the_risk_sweep_reads_pending_snapshots_on_every_master(
    cluster: LocalRedisCluster,
) -> None:
    """The sweep's read spans the masters: each customer's snapshot, last-seen time and
    the times of their listed touchpoints (their keys share one slot)."""

    async def scenario() -> None:
        client = aioredis.RedisCluster.from_url(cluster.url, decode_responses=True)
        store = FeatureStore(client, StoreConfig(secret=b"cluster", prefix="sweep"),
                             clock=lambda: NOW.timestamp())  # fmt: skip
        customers = [f"sweep-cust-{i}" for i in range(30)]
        try:
            for n, customer in enumerate(customers):
                at = NOW - timedelta(days=60)
                clicks = [WebClick(event_id=f"{customer}-{k}", customer_id=customer, page="/",
                                   ts=at + timedelta(days=k * 50)) for k in range(2)]  # fmt: skip
                await store.apply(clicks)
                snapshot = f'{{"x": {{"experience": {n}}}, "ts_ms": {int(at.timestamp() * 1000)}}}'
                await store.apply_facts([risk_fact(f"{customer}-r", customer, at, snapshot, "low")])
            found = [p async for page in store.risks.pending(page=7) for p in page]
            assert len(found) == len(customers)
            first, back = int((NOW - timedelta(days=60)).timestamp() * 1000), 50 * 86_400_000
            assert {p.seen_ms for p in found} == {(first, first + back)}
            owners = {client.get_node_from_key(f"sweep:{{{p.subject}}}:p").name for p in found}
            assert len(owners) == 3
        finally:
            await client.aclose()

    asyncio.run(scenario())


async def test_the_start_check_passes_on_every_node_of_a_cluster(
    cluster: LocalRedisCluster,
) -> None:
    """Its probes of the scripts reached a node at random: one there that had not run
    the probe yet answered NOSCRIPT, and the check was skipped ("unknown") one start in
    four. Its scripts are loaded on every primary, and run on the node of one key."""
    from streams.redis_checks import check_redis_layout
    from streams.settings import Settings

    settings = Settings(redis_url=cluster.url, redis_cluster=True, redis_prefix="startcheck")
    found = [await check_redis_layout(settings, within_s=10) for _ in range(8)]
    assert found == ["marked now"] + ["marked"] * 7


async def test_an_outbox_rides_the_decisions_round_trip_on_a_cluster(
    cluster: LocalRedisCluster,
) -> None:
    """The outbox's key lives in another slot than the customers' (and than its registry):
    its commands go with the decisions' scripts in one round trip all the same. Its
    marks of decisions shown share its slot: the retire script deletes them with it."""
    client = aioredis.RedisCluster.from_url(cluster.url, decode_responses=True)
    store = FeatureStore(client, StoreConfig(secret=b"cluster", prefix="outbox"))
    try:
        decisions = {f"dec-{i}": f'{{"decision_id":"dec-{i}","customer_id":"c-{i}"}}'.encode()
                     for i in range(20)}  # fmt: skip
        records = [
            DecisionRecord(customer_id=f"c-{i}", decision_id=d, ts_ms=int(time.time() * 1000),
                           context=raw)
            for i, (d, raw) in enumerate(decisions.items())
        ]  # fmt: skip
        slots = {await client.cluster_keyslot(store.outboxes.box("p1")),
                 await client.cluster_keyslot(store.outboxes.registry)}  # fmt: skip
        assert len(slots) == 2
        before = store.round_trips
        held = store.outboxes.hold("p1", list(decisions.items()), ttl_s=60)
        assert all(await store.decisions.record(records, outbox=held))
        assert store.round_trips == before + 1
        _, kept = await store.outboxes.scan("p1", 0, 100)
        assert dict(kept) == decisions
        await store.outboxes.keep_shown("p1", ["dec-0"], [], ttl_s=60)
        assert await store.outboxes.are_shown("p1", ["dec-0", "dec-1"]) == [True, False]
        pairs = [("c-0", "dec-0"), ("c-0", "never-recorded"), ("c-1", "never-recorded")]
        assert await store.decisions.publishable(pairs, [False, True, False]) == [
            True,
            True,
            False,
        ]
        await store.outboxes.renew("p1", lease_ms=100, ttl_s=60)
        assert await store.outboxes.processes() == ["p1"]
        assert await store.outboxes.claim(["p1"], "p2", lease_ms=5000) == []  # alive
        await asyncio.sleep(0.2)
        assert await store.outboxes.claim(["p1"], "p2", lease_ms=5000) == ["p1"]
        assert await store.outboxes.claim(["p1"], "p3", lease_ms=5000) == []  # one winner
        assert await store.outboxes.keep_claim("p1", "p2", lease_ms=5000)
        assert await store.outboxes.retire("p1", "p3") is None  # p2's: nothing done
        assert await store.outboxes.retire("p1", "p2") == 20  # the lease alone goes
        assert await store.outboxes.claim(["p1"], "p2", lease_ms=5000) == ["p1"]
        await store.outboxes.release("p1", list(decisions))
        assert await store.outboxes.retire("p1", "p2") == 0  # one script: one slot
        assert await store.outboxes.processes() == []
        outboxes = store.outboxes
        assert (
            await client.exists(outboxes.lease("p1"), outboxes.box("p1"), outboxes.shown("p1")) == 0
        )
    finally:
        await store.close()
