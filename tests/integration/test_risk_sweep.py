"""The churn-risk sweep on real Redis: customers gone quiet get their snapshot labelled
by the clock, once; active customers keep theirs; a touchpoint that got there first wins."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
import redis.asyncio as aioredis

from agents.letters import SourceRecord
from agents.touchpoint_handler import TouchpointHandler
from feature_store import FeatureStore, PendingRisk, StoreConfig, risk_fact
from schemas import Survey, WebClick, encode_touchpoint
from schemas.risk import RiskExample
from streams.risk_sweeper import sweep_risks
from streams.services import Services
from streams.topics import RISK_EXAMPLES
from tests.integration.conftest import Pipeline, consume_all
from tests.integration.test_api_support import eventually
from tests.integration.test_unreadable_budget_counts import POLICY

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)


def _store(services: Services) -> FeatureStore:
    prefix = f"rs{uuid.uuid4().hex[:8]}"
    return FeatureStore.from_url(services.redis_url, StoreConfig(prefix.encode(), prefix))


def _snapshot(x: dict[str, float], at: datetime) -> str:
    return msgspec.json.encode({"x": x, "ts_ms": int(at.timestamp() * 1000)}).decode()


async def _customer(
    store: FeatureStore, customer: str, days_ago: float, x: dict[str, float]
) -> str:
    """A customer last seen ``days_ago``, with a snapshot taken then; its JSON."""
    at = NOW - timedelta(days=days_ago)
    click = WebClick(event_id=f"{customer}-e", customer_id=customer, ts=at, page="/")
    await store.apply([click])
    snapshot = _snapshot(x, at)
    await store.apply_facts([risk_fact(f"{customer}-e", customer, at, snapshot, "low")])
    return snapshot


async def test_quiet_customers_are_labelled_once_and_active_ones_wait(
    kafka_redis: Services,
) -> None:
    store = _store(kafka_redis)
    try:
        gone = await _customer(store, "gone", 60, {"experience": 0.2})
        await _customer(store, "active", 10, {"experience": 0.9})
        erased = await _customer(store, "erased", 60, {"experience": 0.1})
        assert erased
        await store.erase("erased")
        sent: list[RiskExample] = []

        async def send(examples: list[RiskExample]) -> None:
            sent.extend(examples)

        first = await sweep_risks(store, send, NOW)
        assert (first.pending, first.lapsed, first.not_lapsed) == (2, 1, 0)
        (example,) = sent
        assert example.y is True and example.x == {"experience": 0.2}
        snapshot_ms = msgspec.json.decode(gone)["ts_ms"]
        assert example.example_id == f"risk:{store.pseudonym('gone')}:{snapshot_ms}"
        assert "gone" not in example.example_id  # no customer id leaves Moments this way
        gone_features = await store.read("gone")
        active_features = await store.read("active")
        assert gone_features is not None and gone_features.risk_snapshot is None
        assert active_features is not None and active_features.risk_snapshot is not None

        again = await sweep_risks(store, send, NOW)
        assert (again.pending, again.lapsed) == (1, 0) and len(sent) == 1
        # 40 days on, the active customer has been quiet for 50: now they lapse too
        later = await sweep_risks(store, send, NOW + timedelta(days=40))
        assert later.lapsed == 1 and [e.x for e in sent[1:]] == [{"experience": 0.9}]
    finally:
        await store.close()


async def test_a_lapse_ended_by_a_touchpoint_nobody_watched_is_labelled_a_lapse(
    kafka_redis: Services,
) -> None:
    """Quiet 50 days after the snapshot, then back with a survey answer (no decision, no
    risk watch) before any sweep ran: the sweep saw them last seen after the horizon, and
    labelled the lapse "stayed"."""
    store = _store(kafka_redis)
    try:
        await _customer(store, "back", 60, {"experience": 0.3})
        answer = Survey(event_id="back-s", customer_id="back", ts=NOW - timedelta(days=10),
                        score=4, scale="csat5")  # fmt: skip
        await store.apply([answer])
        steady = await _customer(store, "steady", 60, {"experience": 0.6})
        assert steady
        again = Survey(event_id="steady-s", customer_id="steady", ts=NOW - timedelta(days=25),
                       score=4, scale="csat5")  # fmt: skip
        await store.apply([again])
        sent: list[RiskExample] = []

        async def send(examples: list[RiskExample]) -> None:
            sent.extend(examples)

        swept = await sweep_risks(store, send, NOW)
        assert (swept.pending, swept.lapsed, swept.not_lapsed) == (2, 1, 1)
        labels = {e.x["experience"]: e.y for e in sent}
        assert labels == {0.3: True, 0.6: False}  # back after 50 days; after 35, past 30
    finally:
        await store.close()


async def test_a_customer_erased_while_the_sweep_runs_has_no_example_sent(
    kafka_redis: Services,
) -> None:
    """An erasure between the sweep's read of a page and its send: the customer's
    features went to risk-examples after the erasure, and the model learned from them."""
    store = _store(kafka_redis)
    try:
        await _customer(store, "leaving", 60, {"experience": 0.2})
        await _customer(store, "staying", 60, {"experience": 0.4})
        read_pages = store.risks.pending

        async def erasing_after_the_read(
            unreadable: Callable[[int], None],
        ) -> AsyncIterator[list[PendingRisk]]:
            async for page in read_pages(unreadable=unreadable):
                await store.erase("leaving")
                yield page

        store.risks.pending = erasing_after_the_read  # type: ignore[method-assign]
        sent: list[RiskExample] = []

        async def send(examples: list[RiskExample]) -> None:
            sent.extend(examples)

        result = await sweep_risks(store, send, NOW)
        assert [e.x for e in sent] == [{"experience": 0.4}]
        assert (result.pending, result.erased, result.lapsed) == (2, 1, 1)
        assert result.settled_elsewhere == 0
    finally:
        await store.close()


async def test_a_snapshot_a_touchpoint_replaced_meanwhile_is_not_settled(
    kafka_redis: Services,
) -> None:
    store = _store(kafka_redis)
    try:
        await _customer(store, "racer", 60, {"experience": 0.3})
        (page,) = [p async for p in store.risks.pending()]
        (found,) = page
        # the customer's next touchpoint settles the old snapshot and takes a new one
        newer = _snapshot({"experience": 0.7}, NOW)
        await store.apply_facts([risk_fact("racer-new", "racer", NOW, newer, None)])
        assert await store.risks.settle([found]) == [False]
        features = await store.read("racer")
        assert features is not None and features.risk_snapshot == newer
        # settling what is stored now does remove it
        current = PendingRisk(found.subject, newer, found.last_seen_ms)
        assert await store.risks.settle([current]) == [True]
        features = await store.read("racer")
        assert features is not None and features.risk_snapshot is None
    finally:
        await store.close()


async def test_the_leading_worker_sweeps_on_its_timer_and_counts_its_rounds(
    pipeline: Pipeline,
) -> None:
    store = pipeline.store()
    try:
        await _customer(store, "quiet-one", 60, {"experience": 0.4})
        worker = pipeline.start_worker(MOMENTS_RISK_SWEEP_INTERVAL_S="1")

        def rounds(outcome: str) -> float:
            return worker.metric("moments_risk_sweep_rounds_total", outcome=outcome)

        def lapsed() -> float:
            return worker.metric("moments_risk_sweep_snapshots_total", label="lapsed")

        async def once(check: Callable[[], object]) -> object:
            return check()

        await eventually(lambda: once(lapsed), "the quiet customer's snapshot counted as lapsed")
        assert rounds("ok") >= 1 and rounds("failed") == 0
        (record,) = await consume_all(
            pipeline.services.kafka_bootstrap, pipeline.topic(RISK_EXAMPLES), 1
        )
        example = msgspec.json.decode(record.value, type=RiskExample)  # type: ignore[attr-defined]
        assert example.y is True and example.x == {"experience": 0.4}
        features = await store.read("quiet-one")
        assert features is not None and features.risk_snapshot is None
        # rounds go on (every second) without labelling the customer again
        done = rounds("ok")
        await eventually(lambda: once(lambda: rounds("ok") >= done + 2), "two more rounds")
        assert lapsed() == 1.0 and rounds("failed") == 0
    finally:
        await store.close()


async def test_a_customer_whose_keys_cannot_be_read_is_left_out_not_every_round_failed(
    kafka_redis: Services,
) -> None:
    """One profile of another type, one time that is no number: the sweep failed every
    round (WRONGTYPE, or int() of the time), and no quiet customer was labelled."""
    store = _store(kafka_redis)
    admin = aioredis.Redis.from_url(kafka_redis.redis_url, decode_responses=True)
    try:
        await _customer(store, "gone", 60, {"experience": 0.2})
        for broken in ("wrong-type", "bad-time", "bad-list"):
            await _customer(store, broken, 60, {"experience": 0.5})
        keys = {c: store._keys.for_customer(c) for c in ("wrong-type", "bad-time", "bad-list")}
        snapshot = await admin.hget(keys["wrong-type"].profile, "risk_snapshot")
        await admin.delete(keys["wrong-type"].profile)
        await admin.rpush(keys["wrong-type"].profile, snapshot)  # a list, not a hash
        await admin.hset(keys["bad-time"].profile, "last_seen", "yesterday")
        await admin.delete(keys["bad-list"].recent)
        await admin.set(keys["bad-list"].recent, "not a sorted set")
        sent: list[RiskExample] = []

        async def send(examples: list[RiskExample]) -> None:
            sent.extend(examples)

        swept = await sweep_risks(store, send, NOW)
        assert (swept.pending, swept.lapsed, swept.unreadable) == (1, 1, 3)
        assert [e.x for e in sent] == [{"experience": 0.2}]
    finally:
        await admin.aclose()
        await store.close()


async def test_a_snapshot_whose_time_no_date_can_hold_is_left_out_not_every_round_failed(
    kafka_redis: Services,
) -> None:
    """A stored snapshot whose time is past any date (a tool's, a bug's): converting it
    raised OSError (or ValueError), the sweep failed every round, and no quiet customer
    was labelled. It is read as a snapshot that cannot be read: left as it is."""
    store = _store(kafka_redis)
    admin = aioredis.Redis.from_url(kafka_redis.redis_url, decode_responses=True)
    try:
        await _customer(store, "gone", 60, {"experience": 0.2})
        far = {"far-past": -(10**20), "year-3170843-bc": -(10**17)}  # OSError, ValueError
        for customer, at_ms in far.items():
            await _customer(store, customer, 60, {"experience": 0.5})
            stored = msgspec.json.encode({"x": {"experience": 0.5}, "ts_ms": at_ms}).decode()
            await admin.hset(store._keys.for_customer(customer).profile, "risk_snapshot", stored)
        sent: list[RiskExample] = []

        async def send(examples: list[RiskExample]) -> None:
            sent.extend(examples)

        swept = await sweep_risks(store, send, NOW)
        assert (swept.pending, swept.lapsed) == (3, 1)
        assert [e.x for e in sent] == [{"experience": 0.2}]
        for customer, at_ms in far.items():  # left as it is...
            profile = store._keys.for_customer(customer).profile
            assert msgspec.json.decode(await admin.hget(profile, "risk_snapshot"))["ts_ms"] == at_ms
        # ...until a touchpoint of theirs takes a new one (their watch failed at each)
        handler = TouchpointHandler(store, POLICY)
        click = WebClick(event_id="far-click", customer_id="far-past", ts=NOW, page="/")
        record = SourceRecord("touchpoints", 0, 0, b"far-past", encode_touchpoint(click))
        result = await handler.handle([record])
        await handler.reserve(result)
        await handler.confirm(result)
        assert result.dead_letters == []
        replaced = await admin.hget(store._keys.for_customer("far-past").profile, "risk_snapshot")
        assert msgspec.json.decode(replaced)["ts_ms"] == int(NOW.timestamp() * 1000)
    finally:
        await admin.aclose()
        await store.close()
