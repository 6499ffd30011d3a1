"""Concurrent callers of one feature store on real Redis: shared round trips, and a
fresh store used by many tasks at once (the scripts load once, never half loaded)."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
import redis.asyncio as aioredis

from feature_store import (
    ApplyStatus,
    FeatureStore,
    RecentTouchpoint,
    StoreConfig,
    recent_touchpoint_of,
    touchpoint_fact,
)
from feature_store.records import DecisionRecord
from feature_store.reference import CustomerState
from schemas import Consent, Email, Purchase, WebClick
from streams.services import Services

pytestmark = pytest.mark.integration


def _store(services: Services) -> FeatureStore:
    prefix = f"rt{uuid.uuid4().hex[:8]}"
    return FeatureStore.from_url(services.redis_url, StoreConfig(prefix.encode(), prefix))


def _store_over(services: Services, connection: str) -> FeatureStore:
    """A store of its own over "one pipelined connection" or "redis-py pipelines"."""
    prefix = f"rt{uuid.uuid4().hex[:8]}"
    config = StoreConfig(prefix.encode(), prefix)
    if connection == "one pipelined connection":
        return FeatureStore.from_url(services.redis_url, config)
    client = aioredis.Redis.from_url(services.redis_url, decode_responses=True)
    return FeatureStore(client, config)


def _click(n: int, customer: str) -> WebClick:
    ts = datetime.now(UTC) - timedelta(seconds=n)
    return WebClick(event_id=f"e{n}", customer_id=customer, ts=ts, page="/", category="books")


async def test_a_fresh_store_serves_many_concurrent_first_calls(kafka_redis: Services) -> None:
    store = _store(kafka_redis)
    try:
        customers = [f"c{i}" for i in range(40)]
        calls = []
        for i, customer in enumerate(customers):  # one new caller per turn of the loop,
            calls.append(asyncio.create_task(store.apply([_click(i, customer)])))
            calls.append(asyncio.create_task(store.read_for_decisions([customer])))
            await asyncio.sleep(0)  # so that some arrive while the scripts are loading
        done = await asyncio.gather(*calls)
        assert all(status == [1] for status in done[::2])
        views = await store.read_for_decisions(customers)
        assert all(not erased and f is not None and f.events == 1 for erased, f in views)
    finally:
        await store.close()


async def test_concurrent_calls_share_round_trips_and_keep_their_order(
    kafka_redis: Services,
) -> None:
    store = _store(kafka_redis)
    try:
        await store.apply([_click(0, "warm")])  # scripts loaded
        before = store.round_trips

        # 30 callers at once: each applies a click, then reads back what it wrote
        async def apply_then_read(i: int) -> int:
            await store.apply([_click(i, f"c{i}")])
            ((erased, features),) = await store.read_for_decisions([f"c{i}"])
            assert not erased and features is not None
            return features.events

        events = await asyncio.gather(*(apply_then_read(i) for i in range(30)))
        assert events == [1] * 30  # every read saw its own write
        trips = store.round_trips - before
        assert trips < 30, f"{trips} round trips for 60 calls: nothing was shared"
    finally:
        await store.close()


@pytest.mark.parametrize("connection", ["one pipelined connection", "redis-py pipelines"])
async def test_scripts_lost_by_redis_are_loaded_again(
    kafka_redis: Services, connection: str
) -> None:
    """A restarted or flushed Redis forgets the scripts: the store loads them again and
    the call goes through, applied once."""
    store = _store_over(kafka_redis, connection)
    admin = aioredis.Redis.from_url(kafka_redis.redis_url)
    try:
        assert await store.apply([_click(1, "c1")]) == [1]
        await admin.script_flush()
        assert await store.apply([_click(2, "c1"), _click(1, "c1")]) == [1, 0]
        features = await store.read("c1")
        assert features is not None and features.events == 2
    finally:
        await admin.aclose()
        await store.close()


@pytest.mark.parametrize("connection", ["one pipelined connection", "redis-py pipelines"])
async def test_applying_a_burst_tells_each_customers_newest_touchpoint_before_it(
    kafka_redis: Services, connection: str
) -> None:
    """The recent list keeps 20: a burst of 25 pushes out the touchpoint before it, which
    ``newest_before`` still tells, read before the burst in the same round trip."""
    store = _store_over(kafka_redis, connection)
    try:
        at = datetime.now(UTC)
        bought = Purchase(event_id="p", customer_id="c1", ts=at - timedelta(days=120),
                          order_id="o", amount=20.0, currency="EUR")  # fmt: skip
        assert await store.apply([bought]) == [1]
        clicks = [_click(n, "c1") for n in range(25, 0, -1)] + [_click(0, "c2")]
        before: dict[str, RecentTouchpoint | None] = {}
        assert await store.apply(clicks, newest_before=before) == [1] * 26
        assert before == {"c1": recent_touchpoint_of(bought), "c2": None}
        features = await store.read("c1")
        assert features is not None and len(features.recent) == 20
        assert "p" not in {r.event_id for r in features.recent}  # pushed out
        again: dict[str, RecentTouchpoint | None] = {}
        assert await store.apply(clicks[:1], newest_before=again) == [0]
        # read again after the apply (a worker stopped, a reply lost): the one kept when
        # the first of them was applied, not the batch's own newest (the event id of one
        # pushed out of the list is not kept)
        kept = recent_touchpoint_of(bought)
        assert kept is not None
        assert again == {"c1": msgspec.structs.replace(kept, event_id="")}
    finally:
        await store.close()


async def test_the_export_lists_decisions_whose_context_expired(kafka_redis: Services) -> None:
    """A visitor's decision that offered nothing keeps its context a day, its id in the
    customer's lists longer: the export still shows that id, and holds something."""
    store = _store(kafka_redis)
    admin = aioredis.Redis.from_url(kafka_redis.redis_url)
    try:
        at_ms = int(time.time() * 1000) - 3_600_000
        context = b'{"decision_id": "d1", "offers": []}'
        record = DecisionRecord("visitor", "d1", at_ms, context, None, offered=False)
        assert await store.decisions.record([record]) == [True]
        shown = await store.export("visitor")
        assert shown.decision_ids == [("d1", at_ms)] and len(shown.decisions) == 1
        tag = store.pseudonym("visitor")
        (context_key,) = [k async for k in admin.scan_iter(f"*{tag}*") if k.endswith(b"d1")]
        await admin.delete(context_key)  # as a day's expiry does
        left = await store.export("visitor")
        assert left.holds_anything and left.decisions == []
        assert left.decision_ids == [("d1", at_ms)]
    finally:
        await admin.aclose()
        await store.close()


async def test_an_id_first_seen_too_old_is_too_old_however_its_copies_are_dated(
    kafka_redis: Services,
) -> None:
    """Sent dated 1970 by a device whose clock was unset, then again with its clock set
    right: the copy was a plain duplicate, decided on though never applied."""
    store = _store(kafka_redis)
    try:
        fixed = WebClick(event_id="same", customer_id="c1", ts=datetime.now(UTC), page="/")
        unset = WebClick(event_id="same", customer_id="c1", ts=datetime(1970, 1, 2, tzinfo=UTC),
                         page="/")  # fmt: skip
        assert await store.apply([unset]) == [ApplyStatus.EXPIRED]
        assert await store.apply([fixed]) == [ApplyStatus.EXPIRED]
        assert await store.read("c1") is None
    finally:
        await store.close()


async def test_a_batch_with_a_failing_script_tells_which_facts_it_applied(
    kafka_redis: Services,
) -> None:
    """Redis runs every script of a batch: one failing does not undo the others, and the
    store says which ones it applied, so that a retry can tell them from duplicates."""
    store = _store(kafka_redis)
    admin = aioredis.Redis.from_url(kafka_redis.redis_url)
    try:
        await admin.set(store._keys.for_customer("broken").seen, "not a sorted set")
        batch = [_click(1, "c1"), _click(2, "broken"), _click(3, "c3")]
        ran: dict[int, ApplyStatus] = {}
        with pytest.raises(Exception, match="WRONGTYPE"):
            await store.apply(batch, ran)
        assert ran == {0: ApplyStatus.APPLIED, 2: ApplyStatus.APPLIED}
        await admin.delete(store._keys.for_customer("broken").seen)
        again: dict[int, ApplyStatus] = {}
        assert await store.apply(batch, again) == [0, 1, 0]
        assert again == dict(enumerate([0, 1, 0]))
    finally:
        await admin.aclose()
        await store.close()


@pytest.mark.parametrize("corrupt", ["profile", "windows", "recent"])
async def test_a_fact_whose_script_cannot_finish_writes_nothing_and_fails_again(
    kafka_redis: Services, corrupt: str
) -> None:
    """Redis keeps a failing script's writes: a key of another type met after the fact
    was marked seen left it marked and unapplied, so the retry took it for a duplicate
    and it was lost without a word. Now it fails before any write, every time (the
    worker then sets it aside, with the reason), and applies once the key is mended."""
    store = _store(kafka_redis)
    admin = aioredis.Redis.from_url(kafka_redis.redis_url)
    keys = store._keys.for_customer("broken")
    try:
        await admin.set(getattr(keys, corrupt), "not what it should be")
        for _ in range(2):
            with pytest.raises(Exception, match="WRONGTYPE"):
                await store.apply([_click(1, "broken")])
        # nothing written: of the keys the fact writes, only the corrupt one is there
        assert await admin.exists(keys.profile, keys.windows, keys.seen, keys.recent) == 1
        await admin.delete(getattr(keys, corrupt))
        assert await store.apply([_click(1, "broken")]) == [ApplyStatus.APPLIED]
        features = await store.read("broken")
        assert features is not None and features.events == 1
    finally:
        await admin.aclose()
        await store.close()


async def test_a_purchase_that_would_overflow_a_counter_writes_nothing(
    kafka_redis: Services,
) -> None:
    """HINCRBY refuses to go past 2**63: met part way through the script, it left the
    fact half applied and unmarked, and each retry counted its first updates again. Now
    the fact fails before any write, every time (and is set aside by the worker)."""
    store = _store(kafka_redis)
    admin = aioredis.Redis.from_url(kafka_redis.redis_url, decode_responses=True)
    keys = store._keys.for_customer("big-spender")
    now = datetime.now(UTC)
    try:
        assert await store.apply([_click(1, "big-spender")]) == [ApplyStatus.APPLIED]
        await admin.hset(keys.profile, "spend_cents", str(9_223_300_000_000_000_000))
        before = await admin.hgetall(keys.profile)
        purchase = Purchase(event_id="p1", customer_id="big-spender", ts=now, order_id="o1",
                            amount=1e12, currency="EUR")  # fmt: skip
        for _ in range(2):
            with pytest.raises(Exception, match="would overflow"):
                await store.apply([purchase])
        assert await admin.hgetall(keys.profile) == before  # n, purchases: as they were
    finally:
        await admin.aclose()
        await store.close()


@pytest.mark.parametrize("held", ["1.0", "1e3", "0x10", " 5", "5 ", "007"])
async def test_a_counter_that_does_not_hold_an_integer_fails_the_fact_before_any_write(
    kafka_redis: Services, held: str
) -> None:
    """A counter written by hand or another tool, which Lua reads as a number but HINCRBY
    refuses: the script failed part way, and each retry counted the updates before it
    again."""
    store = _store(kafka_redis)
    admin = aioredis.Redis.from_url(kafka_redis.redis_url, decode_responses=True)
    customer = f"odd-counter-{held.strip()}"
    keys = store._keys.for_customer(customer)
    try:
        assert await store.apply([_click(1, customer)]) == [ApplyStatus.APPLIED]
        await admin.hset(keys.profile, "n:web_click", held)
        before = await admin.hgetall(keys.profile)
        for _ in range(2):
            with pytest.raises(Exception, match="does not hold an integer"):
                await store.apply([_click(2, customer)])
        assert await admin.hgetall(keys.profile) == before
    finally:
        await admin.aclose()
        await store.close()


async def test_a_withdrawal_outlives_the_profile_expiry_until_consent_is_granted_again(
    kafka_redis: Services,
) -> None:
    """A profile expired 400 days after its last fact, and with it the withdrawal it held:
    a customer who withdrew consent and stayed away was contacted again on their return.
    Now the withdrawals are kept apart, without expiry; everything else still expires."""
    store = _store(kafka_redis)
    client = aioredis.Redis.from_url(kafka_redis.redis_url, decode_responses=True)
    now = datetime.now(UTC)

    def event(n: int, kind: type[Consent] | type[Email], **fields: object) -> Consent | Email:
        # 20 minutes apart: a grant lifts a withdrawal dated over 15 minutes before it
        return kind(event_id=f"w{n}", customer_id="quiet",
                    ts=now - timedelta(minutes=100 - 20 * n), **fields)  # type: ignore[arg-type]  # fmt: skip

    try:
        keys = store._keys.for_customer("quiet")
        await store.apply([_click(5, "quiet")])
        assert not await client.exists(keys.optouts)
        await store.apply([event(1, Consent, channel="sms", granted=False)])
        await store.apply([event(2, Email, action="unsubscribed")])
        assert 0 < await client.ttl(keys.profile) <= 400 * 86400  # the profile expires
        assert await client.ttl(keys.optouts) == -1  # the withdrawals do not
        assert set(await client.hkeys(keys.optouts)) == {
            "consent:sms", "consent:sms@", "subscribed:email", "subscribed:email@"}  # fmt: skip
        await client.delete(keys.profile, keys.windows, keys.seen, keys.recent)  # 400 days on
        ((_, features),) = await store.read_for_decisions(["quiet"])
        assert features is not None and features.consent == {"sms": False}
        assert features.email_subscribed is False and features.events == 0
        full = await store.read("quiet")  # the profile read (a script) knows them too
        assert full is not None and full.consent == {"sms": False}
        assert full.email_subscribed is False
        await store.apply([_click(0, "quiet")])  # back: the profile starts from them
        ((_, features),) = await store.read_for_decisions(["quiet"])
        assert features is not None and features.consent == {"sms": False}
        assert features.email_subscribed is False and features.events == 1
        await store.apply([event(3, Consent, channel="all", granted=True)])  # granted again
        ((_, features),) = await store.read_for_decisions(["quiet"])
        assert features is not None and features.email_subscribed is True
        assert features.consent == dict.fromkeys(("email", "sms", "call", "web"), True)
        assert not await client.exists(keys.optouts)
        await store.apply([event(4, Consent, channel="call", granted=False)])
        receipt = await store.erase("quiet")  # erasure takes the withdrawals too
        assert "optouts" in receipt.kinds and not await client.exists(keys.optouts)
    finally:
        await client.aclose()
        await store.close()


async def test_a_redelivery_within_the_dedupe_horizon_is_a_duplicate_and_older_ids_are_forgotten(
    kafka_redis: Services,
) -> None:
    """Days pass on the store's clock: an event delivered again just before the dedupe
    horizon is still a duplicate, although newer events came in between; the ids applied
    before the horizon are dropped, as the pure reference drops them, and such an event is
    taken again (the topics no longer hold it, so only a producer could send it again)."""
    prefix = f"rt{uuid.uuid4().hex[:8]}"
    config = StoreConfig(prefix.encode(), prefix)
    horizon_ms = config.dedupe_horizon_s * 1000
    start_ms = int(time.time()) * 1000  # whole seconds: the clock's float is exact
    now_ms = [start_ms]
    store = FeatureStore.from_url(kafka_redis.redis_url, config, clock=lambda: now_ms[0] / 1000)
    reference = CustomerState()
    customer = "returning"
    first, second, third = (
        WebClick(event_id=f"h{n}", customer_id=customer, page="/", category="books",
                 ts=datetime.fromtimestamp(start_ms / 1000, UTC) - timedelta(minutes=n))
        for n in (1, 2, 3)
    )  # fmt: skip
    steps = [  # (ms after the first delivery, the event delivered, what becomes of it)
        (0, first, ApplyStatus.APPLIED),
        (horizon_ms // 2, second, ApplyStatus.APPLIED),  # a newer event: old ids are pruned
        (horizon_ms - 1000, first, ApplyStatus.DUPLICATE),  # just inside the horizon
        (horizon_ms, first, ApplyStatus.DUPLICATE),  # the horizon's last moment
        (horizon_ms + 1000, third, ApplyStatus.APPLIED),  # prunes the first's id
        (horizon_ms + 2000, second, ApplyStatus.DUPLICATE),  # still within its own horizon
        (horizon_ms + 3000, first, ApplyStatus.APPLIED),  # forgotten: taken again
    ]
    try:
        for after_ms, delivered, expected in steps:
            now_ms[0] = start_ms + after_ms
            fact = touchpoint_fact(delivered, config.money)
            assert reference.apply(fact, now_ms[0], horizon_ms=horizon_ms) == expected
            assert await store.apply([delivered]) == [expected], (after_ms, delivered.event_id)
            assert (await store.raw(customer))["seen"] == sorted(reference.seen), after_ms
        ids = [m for m in sorted(reference.seen) if not m.startswith("b:")]  # not the marks
        assert ids == [f"t:{e.event_id}" for e in (first, second, third)]
        features = await store.read(customer)
        applied = sum(expected == ApplyStatus.APPLIED for _, _, expected in steps)
        assert features is not None and features.events == applied  # the first's twice
    finally:
        await store.close()


async def test_a_corrupt_unsubscribe_count_leaves_no_fact_half_applied(
    kafka_redis: Services,
) -> None:
    """The script compared a count that was no number after it had remembered the fact:
    the fact failed half applied (its expiries not renewed), and its retry was taken for
    a duplicate, so nothing more of it was ever applied or decided."""
    store = _store(kafka_redis)
    admin = aioredis.Redis.from_url(kafka_redis.redis_url)
    try:
        assert await store.apply([_click(0, "c1")]) == [ApplyStatus.APPLIED]
        profile = store._keys.for_customer("c1").profile
        await admin.hset(profile, "email:unsubscribed", "x")
        assert await store.apply([_click(1, "c1")]) == [ApplyStatus.APPLIED]
        assert await store.apply([_click(1, "c1")]) == [ApplyStatus.DUPLICATE]
        assert await admin.pttl(store._keys.for_customer("c1").windows) > 0
    finally:
        await admin.aclose()
        await store.close()
