"""How long the feature store keeps what it keeps, on real Redis: a customer's keys are
renewed by their own activity only, every key a fact or a decision makes expires, the
ids of the facts applied are kept for the dedupe horizon, the erasure tombstone lives
as long as the settings say, and the rolling windows cover what docs/feature-store.md
says they do."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from agents.contact_policy import ContactPolicy
from agents.control_group import ControlGroup
from feature_store import (
    ApplyStatus,
    DecisionRecord,
    FeatureStore,
    StoreConfig,
    intervention_fact,
    offers_shown_fact,
    risk_fact,
)
from feature_store.derived import RESOLUTION_SIZE, WINDOWS
from feature_store.facts import DAY_MS, touchpoint_fact
from feature_store.keys import KeySet
from feature_store.reference import CustomerState
from schemas import Consent, Email, Purchase, WebClick
from streams.app import build_store
from streams.services import LocalRedis
from streams.settings import Settings

pytestmark = pytest.mark.integration

DAY_S = 86_400
TTL_S = 100 * DAY_S
HORIZON_S = 8 * DAY_S
CONTACT_ONLY_S = 30 * DAY_S  # StoreConfig's default
STRANGER_S = DAY_S  # StoreConfig's default
NEARLY_UP_S = 1000  # what is left of a key's lifetime, as if the customer had left
FEATURE_STORE_DOC = Path(__file__).resolve().parents[2] / "docs" / "feature-store.md"


def _store(
    redis: LocalRedis, clock: Callable[[], float] = time.time, ttl_s: int = TTL_S
) -> FeatureStore:
    prefix = f"ex{uuid.uuid4().hex[:8]}"
    config = StoreConfig(prefix.encode(), prefix, ttl_s=ttl_s, dedupe_horizon_s=HORIZON_S)
    return FeatureStore.from_url(redis.url, config, clock=clock)


@pytest.fixture
async def admin(private_redis: LocalRedis) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(private_redis.url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


def _keys_of(store: FeatureStore, customer_id: str) -> KeySet:
    return store._keys.for_customer(customer_id)


async def _ttls(admin: aioredis.Redis, keys: KeySet, *kinds: str) -> dict[str, int]:
    return {kind: await admin.ttl(getattr(keys, kind)) for kind in kinds}


def _click(event_id: str, customer_id: str, ts: datetime) -> WebClick:
    return WebClick(event_id=event_id, customer_id=customer_id, ts=ts, page="/", category="a")


def _email(event_id: str, customer_id: str, action: str, ts: datetime) -> Email:
    return Email(event_id=event_id, customer_id=customer_id, ts=ts, action=action)


async def test_only_the_customers_own_activity_renews_their_keys(
    private_redis: LocalRedis, admin: aioredis.Redis
) -> None:
    """Emails the business sent and Moments' own contacts leave a lapsed customer's keys
    to expire when they would have; the customer's next click renews them all."""
    store = _store(private_redis)
    now = datetime.now(UTC)
    try:
        await store.apply([_click("c1", "gone", now - timedelta(days=3))])
        await store.apply_facts([offers_shown_fact("d0", "gone", "web", ["o1"], now)])
        k = _keys_of(store, "gone")
        kinds = ("profile", "windows", "contacts", "recent")
        for kind in (*kinds, "seen"):
            await admin.expire(getattr(k, kind), NEARLY_UP_S)

        for i, action in enumerate(("sent", "delivered", "bounced")):
            assert await store.apply([_email(f"n{i}", "gone", action, now)]) == [1]
        assert await store.apply_facts([
            offers_shown_fact("d1", "gone", "email", ["o2"], now),
            intervention_fact("i1", "gone", "retention_call", now),
            risk_fact("r1", "gone", now, None, "high"),
        ]) == [1, 1, 1]  # fmt: skip
        left = await _ttls(admin, k, *kinds)
        assert all(0 < ttl <= NEARLY_UP_S for ttl in left.values()), left
        # the ids of the facts just applied are still known for the dedupe horizon
        assert HORIZON_S - 60 <= await admin.ttl(k.seen) <= HORIZON_S

        assert await store.apply([_click("c2", "gone", now)]) == [1]
        renewed = await _ttls(admin, k, *kinds, "seen")
        assert all(TTL_S - 60 <= ttl <= TTL_S for ttl in renewed.values()), renewed
    finally:
        await store.close()


async def test_a_decision_for_a_customer_who_left_keeps_their_decisions_no_longer(
    private_redis: LocalRedis, admin: aioredis.Redis
) -> None:
    """A recommendation for a customer whose profile had days left gave their recent
    decisions the whole TTL from it: an email service asking for lapsed customers kept a
    key about each of them long after everything else of theirs was gone."""
    store = _store(private_redis)
    now = datetime.now(UTC)
    try:
        await store.apply([_click("c1", "left", now - timedelta(days=3))])
        k = _keys_of(store, "left")
        await admin.expire(k.profile, NEARLY_UP_S)
        record = DecisionRecord("left", "d1", int(now.timestamp() * 1000), b"{}")
        assert await store.decisions.record([record]) == [True]
        assert 0 < await admin.ttl(k.decisions) <= NEARLY_UP_S
        assert await admin.ttl(k.profile) <= NEARLY_UP_S  # not renewed either
        # their own click renews both
        assert await store.apply([_click("c2", "left", now)]) == [1]
        await store.decisions.record([DecisionRecord("left", "d2", record.ts_ms + 1, b"{}")])
        assert await admin.ttl(k.decisions) >= TTL_S - 60
    finally:
        await store.close()


async def test_keys_made_by_facts_other_than_activity_expire(
    private_redis: LocalRedis, admin: aioredis.Redis
) -> None:
    """A customer Moments knows only from emails sent and offers shown (no activity of
    their own): every key made for them expires, the contact-only TTL after the latest
    of those, whatever their order; the seen ids keep the dedupe horizon."""
    store = _store(private_redis)
    now = datetime.now(UTC)
    try:
        await store.apply([_email("n1", "mailed", "sent", now)])
        await store.apply_facts([offers_shown_fact("d1", "mailed", "email", ["o1"], now)])
        k = _keys_of(store, "mailed")
        kinds = ("profile", "contacts")  # (an email sent counts in no window)
        made = await _ttls(admin, k, *kinds)
        assert all(CONTACT_ONLY_S - 60 <= t <= CONTACT_ONLY_S for t in made.values()), made
        assert HORIZON_S - 60 <= await admin.ttl(k.seen) <= HORIZON_S
        for kind in kinds:
            await admin.expire(getattr(k, kind), NEARLY_UP_S)
        await store.apply([_email("n2", "mailed", "delivered", now)])
        assert CONTACT_ONLY_S - 60 <= await admin.ttl(k.profile) <= CONTACT_ONLY_S
        assert await admin.ttl(k.contacts) <= NEARLY_UP_S  # no offer shown since
    finally:
        await store.close()


async def test_a_replay_within_the_horizon_is_known_after_the_profile_expired(
    private_redis: LocalRedis, admin: aioredis.Redis
) -> None:
    """An email sent just before a lapsed customer's keys expire, replayed after: still a
    duplicate, and no profile is made again."""
    store = _store(private_redis)
    now = datetime.now(UTC)
    try:
        await store.apply([_click("c1", "lapsed", now - timedelta(days=99))])
        k = _keys_of(store, "lapsed")
        for kind in ("profile", "windows", "seen", "recent"):
            await admin.pexpire(getattr(k, kind), 500)
        newsletter = _email("n1", "lapsed", "sent", now)
        assert await store.apply([newsletter]) == [ApplyStatus.APPLIED]
        await asyncio.sleep(0.8)
        assert not await admin.exists(k.profile, k.windows, k.recent)  # expired
        assert await store.apply([newsletter]) == [ApplyStatus.DUPLICATE]
        assert not await admin.exists(k.profile)
    finally:
        await store.close()


async def test_the_seen_ids_keep_their_expiry_when_every_one_has_aged_out(
    private_redis: LocalRedis, admin: aioredis.Redis
) -> None:
    """Ten days after a click, an email sent to the customer: the click's id is past the
    dedupe horizon and leaves the set; the set keeps the expiry the click gave it (it
    used to empty, go, and come back with a fresh one, outliving the profile)."""
    now = [time.time()]
    store = _store(private_redis, clock=lambda: now[0])
    try:
        at = datetime.fromtimestamp(now[0], UTC)
        await store.apply([_click("ev-seen-1", "aged", at)])
        k = _keys_of(store, "aged")
        for key in (k.profile, k.seen):  # ten days go by
            await admin.expire(key, TTL_S - 10 * DAY_S)
        now[0] += 10 * DAY_S
        later = at + timedelta(days=10)
        assert await store.apply([_email("ev-seen-2", "aged", "delivered", later)]) == [
            ApplyStatus.APPLIED]  # fmt: skip
        assert await admin.zrange(k.seen, 0, -1) == ["t:ev-seen-2"]
        left = await admin.ttl(k.seen)
        assert TTL_S - 10 * DAY_S - 60 <= left <= TTL_S - 10 * DAY_S, left / DAY_S
    finally:
        await store.close()


async def test_a_decision_without_its_touchpoint_leaves_no_key_without_expiry(
    private_redis: LocalRedis, admin: aioredis.Redis
) -> None:
    """`moments rebuild` replaying a decision whose touchpoint left the topic: the seen
    set it makes expires like one the touchpoint would have made; one that exists keeps
    its expiry."""
    now = time.time()
    store = _store(private_redis, clock=lambda: now)
    try:
        decided_ms = int((now - 3 * DAY_S) * 1000)
        await store.decisions.record([DecisionRecord("new", "d1", decided_ms, b"{}", "ev1")])
        k = _keys_of(store, "new")
        assert await admin.zrange(k.seen, 0, -1) == ["d:t:ev1"]
        life_s = TTL_S - 2 * DAY_S  # from the decision's time: 3 days ago, less a day's lag
        assert life_s - 60 <= await admin.ttl(k.seen) <= life_s
        # no activity of theirs is known: their decisions, the contact-only TTL
        listed_s = CONTACT_ONLY_S - 2 * DAY_S
        assert listed_s - 60 <= await admin.ttl(k.decisions) <= listed_s
        for key in [*k.all(), k.context("d1")]:
            assert await admin.ttl(key) != -1, key

        at = datetime.fromtimestamp(now, UTC)
        await store.apply([_click("ev2", "known", at)])
        known = _keys_of(store, "known")
        await admin.expire(known.seen, NEARLY_UP_S)
        await store.decisions.record([DecisionRecord("known", "d2", int(now * 1000), b"{}", "ev2")])
        assert 0 < await admin.ttl(known.seen) <= NEARLY_UP_S
    finally:
        await store.close()


@pytest.mark.parametrize(("days", "horizon_days"), [(400, 8), (30, 8), (8, 8)])
async def test_the_tombstone_lives_as_long_as_the_settings_say(
    private_redis: LocalRedis, admin: aioredis.Redis, days: int, horizon_days: int
) -> None:
    """MOMENTS_TOMBSTONE_DAYS reaches the store `build_store` makes; while the tombstone
    lives, a replay of the erased customer's events brings nothing back."""
    env = {
        "MOMENTS_REDIS_PREFIX": f"ts{uuid.uuid4().hex[:8]}",
        "MOMENTS_TOMBSTONE_DAYS": str(days),
        "MOMENTS_DEDUPE_HORIZON_DAYS": str(horizon_days),
    }
    store = build_store(Settings.from_env(env), redis_url=private_redis.url)
    now = datetime.now(UTC)
    bought = Purchase(event_id="p1", customer_id="erased", ts=now, order_id="o",
                      amount=5, currency="EUR")  # fmt: skip
    try:
        await store.apply([bought])
        assert (await store.erase("erased")).blocked
        ttl = await admin.ttl(_keys_of(store, "erased").tombstone)
        assert days * DAY_S - 60 <= ttl <= days * DAY_S, ttl
        assert await store.apply([bought]) == [ApplyStatus.ERASED]
        assert await store.read("erased") is None
    finally:
        await store.close()


def test_the_docs_say_what_each_rolling_window_covers() -> None:
    """A window of N buckets covers N-1 whole buckets and the current one as far as it
    has gone: docs/feature-store.md gives those bounds for each window."""
    text = " ".join(FEATURE_STORE_DOC.read_text(encoding="utf-8").split())
    phrases = {  # window: (unit in ms, how the docs put it)
        "1h": (60_000, "(the last {} to {} minutes)"),
        "24h": (3_600_000, "({} to {} hours)"),
        "7d": (DAY_MS, "({} to {} and"),
        "30d": (DAY_MS, "and {} to {} days)"),
        "365d": (DAY_MS, "({} to {} days)"),
    }
    for name, (unit, phrase) in phrases.items():
        resolution, count = WINDOWS[name]
        size = RESOLUTION_SIZE[resolution]
        expected = phrase.format((count - 1) * size // unit, count * size // unit)
        assert expected in text, expected


async def test_the_365_day_window_covers_357_to_364_days(private_redis: LocalRedis) -> None:
    """At the start of a week the 365 d window reaches back 357 days; at its end, a
    millisecond short of 364 days. And 1 h, four minutes into a five-minute bucket,
    reaches back 59 minutes."""
    week = RESOLUTION_SIZE["k"]
    week_start_ms = int(time.time() * 1000) // week * week
    for now_ms, reach_days in ((week_start_ms, 357), (week_start_ms + week - 1, 364)):
        # keys kept longer than the window (a purchase older than the TTL is not applied)
        store = _store(private_redis, lambda now_ms=now_ms: now_ms / 1000, ttl_s=400 * DAY_S)
        now = datetime.fromtimestamp(now_ms / 1000, UTC)
        reach = timedelta(days=reach_days)
        edge = timedelta(milliseconds=0 if reach_days == 357 else 1)
        inside, outside = now - reach + edge, now - reach + edge - timedelta(milliseconds=1)
        try:
            for name, ts in (("inside", inside), ("outside", outside)):
                await store.apply([Purchase(event_id=name, customer_id=name, ts=ts,
                                            order_id="o", amount=1, currency="EUR")])  # fmt: skip
            found = await store.read_many(["inside", "outside"])
            assert [f.purchases_365d if f else None for f in found] == [1, 0], now
        finally:
            await store.close()
    now_ms = week_start_ms + 4 * 60_000  # four minutes into a five-minute bucket
    store = _store(private_redis, clock=lambda: now_ms / 1000)
    now = datetime.fromtimestamp(now_ms / 1000, UTC)
    try:
        await store.apply([_click("a", "h", now - timedelta(minutes=59)),
                           _click("b", "h", now - timedelta(minutes=59, milliseconds=1)),
                           _click("c", "h", now)])  # fmt: skip
        features = await store.read("h")
        assert features is not None
        assert features.activity["1h"]["web_click"] == 2
    finally:
        await store.close()


async def test_keys_expire_the_ttl_after_the_newest_activity_by_its_own_time(
    private_redis: LocalRedis, admin: aioredis.Redis
) -> None:
    """A replayed activity (`moments rebuild`) gives the keys the TTL from its own time,
    not from the replay; an older one never shortens that; a live one (dated within a
    day, or a little ahead) gives the whole TTL from now, as it always did. The
    reference model says the same."""
    now = time.time()
    store = _store(private_redis, clock=lambda: now)
    at = datetime.fromtimestamp(now, UTC)
    reference = CustomerState()
    ttl_ms, now_ms = TTL_S * 1000, int(now * 1000)
    k = _keys_of(store, "back")

    async def apply(event: WebClick | Email) -> list[ApplyStatus]:
        got = await store.apply([event])
        fact = touchpoint_fact(event)
        assert [reference.apply(fact, now_ms, HORIZON_S * 1000, ttl_ms=ttl_ms)] == got
        return got

    async def left_days() -> dict[str, float]:
        kinds = ("profile", "windows", "seen", "recent")
        pttl = {kind: await admin.pttl(getattr(k, kind)) for kind in kinds}
        for kind in kinds:  # as the reference has it (a few ms may have passed)
            assert abs(pttl[kind] - (reference.expires_ms[kind] - now_ms)) < 5000, kind
        return {kind: ms / (DAY_S * 1000) for kind, ms in pttl.items()}

    try:
        assert await apply(_click("c1", "back", at - timedelta(days=60))) == [1]
        # the TTL from 60 days ago (the day a live event may lag counted as now)
        assert all(40.9 < d <= 41.0 for d in (await left_days()).values())
        assert await apply(_click("c2", "back", at - timedelta(days=80))) == [1]
        assert all(40.9 < d <= 41.0 for d in (await left_days()).values())  # not shortened
        assert await apply(_click("c3", "back", at - timedelta(hours=20))) == [1]
        assert all(99.9 < d <= 100 for d in (await left_days()).values())  # live: whole TTL
        assert await apply(_click("c4", "back", at + timedelta(minutes=10))) == [1]
        assert all(99.9 < d <= 100 for d in (await left_days()).values())  # not beyond
    finally:
        await store.close()


async def test_a_fact_dated_the_ttl_ago_makes_no_profile_but_keeps_its_withdrawal(
    private_redis: LocalRedis, admin: aioredis.Redis
) -> None:
    """`moments rebuild` replaying a customer quiet longer than the TTL: live, their
    profile had expired, so the replay makes none (EXPIRED); a withdrawal among those
    events is kept, as live it outlived the profile. Applied again (a batch retried, a
    producer's retry), it is too old still: EXPIRED, not a duplicate, which the pipeline
    would decide on as one whose decision a crash kept from going out."""
    store = _store(private_redis)
    now = datetime.now(UTC)
    old = now - timedelta(days=101)
    try:
        events = [
            _click("o1", "quiet", old),
            Consent(event_id="o2", customer_id="quiet", ts=old, channel="email", granted=False),
        ]
        assert await store.apply(events) == [ApplyStatus.EXPIRED] * 2
        assert await store.apply_facts([offers_shown_fact("d1", "quiet", "web", ["o1"], old)]) == [
            ApplyStatus.EXPIRED
        ]
        k = _keys_of(store, "quiet")
        assert not await admin.exists(k.profile, k.windows, k.recent, k.contacts)
        assert await admin.hgetall(k.optouts) == {
            "consent:email": "0",
            "consent:email@": str(int(old.timestamp() * 1000)),
        }
        assert await store.apply(events) == [ApplyStatus.EXPIRED] * 2
        known = await store.read("quiet")
        assert known is not None and known.consent.get("email") is False and not known.events
        # the next event makes a new profile, starting from the withdrawal
        assert await store.apply([_click("n1", "quiet", now)]) == [ApplyStatus.APPLIED]
        back = await store.read("quiet")
        assert back is not None and back.events == 1 and back.consent.get("email") is False
    finally:
        await store.close()


async def test_replaying_an_erasure_blocks_only_for_what_is_left(
    private_redis: LocalRedis, admin: aioredis.Redis
) -> None:
    """An erasure replayed by `moments rebuild` (``erased_at_ms``) blocks for what is left
    of the tombstone's lifetime from the erasure; one whose block has run out erases
    nothing; a longer block is never shortened."""
    now = time.time()
    store = _store(private_redis, clock=lambda: now)  # tombstone: 400 days (default)
    now_ms = int(now * 1000)
    at = datetime.fromtimestamp(now, UTC)
    try:
        await store.apply([_click("c1", "back", at)])
        lapsed = await store.erase("back", erased_at_ms=now_ms - 500 * DAY_MS)
        assert not lapsed.blocked and lapsed.keys_removed == 0
        assert await store.read("back") is not None  # came back: kept
        assert await store.apply([_click("c2", "back", at)]) == [ApplyStatus.APPLIED]

        await store.apply([_click("c3", "gone", at)])
        k = _keys_of(store, "gone")
        erased = await store.erase("gone", erased_at_ms=now_ms - 100 * DAY_MS)
        assert erased.blocked and erased.keys_removed > 0
        assert 299.99 < await admin.pttl(k.tombstone) / (DAY_S * 1000) <= 300
        assert await admin.get(k.tombstone) == str(now_ms - 100 * DAY_MS)
        older = await store.erase("gone", erased_at_ms=now_ms - 300 * DAY_MS)  # an older one
        assert 299.99 < await admin.pttl(k.tombstone) / (DAY_S * 1000) <= 300
        # the first erasure is the older one, as its receipt says and the store keeps
        assert older.erased_at_ms == now_ms - 300 * DAY_MS
        assert await admin.get(k.tombstone) == str(now_ms - 300 * DAY_MS)
        assert (await store.erase("gone")).erased_at_ms == now_ms - 300 * DAY_MS
        assert await store.apply([_click("c4", "gone", at)]) == [ApplyStatus.ERASED]
        # erased again now (above): the whole block
        assert 399.99 < await admin.pttl(k.tombstone) / (DAY_S * 1000) <= 400
    finally:
        await store.close()


async def test_an_erasure_made_now_keeps_the_first_erasures_time_whatever_its_clock(
    private_redis: LocalRedis, admin: aioredis.Redis
) -> None:
    """Two API processes erasing one customer at once, or a retry on another process,
    with clocks apart: the stored first erasure took the earlier clock's time, and a
    retry answered a time before the first receipt's."""
    now = time.time()
    prefix = f"ex{uuid.uuid4().hex[:8]}"
    config = StoreConfig(prefix.encode(), prefix, ttl_s=TTL_S, dedupe_horizon_s=HORIZON_S)
    ahead = FeatureStore.from_url(private_redis.url, config, clock=lambda: now)
    behind = FeatureStore.from_url(private_redis.url, config, clock=lambda: now - 2.0)
    try:
        await ahead.apply([_click("c1", "twice", datetime.fromtimestamp(now, UTC))])
        first = await ahead.erase("twice")
        assert first.erased_at_ms == int(now * 1000)
        retried = await behind.erase("twice")  # 2 s behind
        assert retried.erased_at_ms == first.erased_at_ms
        assert await admin.get(_keys_of(ahead, "twice").tombstone) == str(first.erased_at_ms)
    finally:
        await ahead.close()
        await behind.close()


async def test_a_visitor_moments_only_decided_for_is_kept_the_stranger_ttl(
    private_redis: LocalRedis, admin: aioredis.Redis
) -> None:
    """A recommendation for an id no touchpoint named (an anonymous visitor's cookie id)
    made keys kept the whole TTL (400 days by default), then the contact-only TTL (30
    days): now the stranger TTL (a day) from Moments' latest contact, the decisions, their
    contexts and the ids seen too, as the reference model has it; their first activity
    gives the whole TTL."""
    now = time.time()
    now_ms = int(now * 1000)
    store = _store(private_redis, clock=lambda: now)
    at = datetime.fromtimestamp(now, UTC)
    reference = CustomerState()
    k = _keys_of(store, "visitor")
    try:
        shown = offers_shown_fact("d1", "visitor", "web", ["o1"], at)
        await store.decisions.record([DecisionRecord("visitor", "d1", now_ms, b"{}", None)],
                                     [shown])  # fmt: skip
        reference.apply(shown, now_ms, HORIZON_S * 1000, ttl_ms=TTL_S * 1000)
        made = await _ttls(admin, k, "profile", "contacts", "decisions", "seen")
        made["context"] = await admin.ttl(k.context("d1"))
        assert all(STRANGER_S - 60 <= t <= STRANGER_S for t in made.values()), made
        assert STRANGER_S <= await admin.ttl(k.decision_index) <= STRANGER_S + 3600
        for kind in ("profile", "contacts", "seen"):
            assert (
                abs(await admin.pttl(getattr(k, kind)) - (reference.expires_ms[kind] - now_ms))
                < 5000
            )
        await store.apply([_click("c1", "visitor", at)])
        await store.decisions.record([DecisionRecord("visitor", "d2", now_ms, b"{}", "c1")])
        known = await _ttls(admin, k, "profile", "contacts", "decisions", "windows", "seen")
        assert all(TTL_S - 60 <= t <= TTL_S for t in known.values()), known
        assert 7 * DAY_S - 60 <= await admin.ttl(k.context("d2")) <= 7 * DAY_S
        assert STRANGER_S - 60 <= await admin.ttl(k.context("d1")) <= STRANGER_S  # kept short
    finally:
        await store.close()


async def test_a_rebuild_keeps_the_bounces_before_a_customers_first_activity(
    private_redis: LocalRedis, admin: aioredis.Redis
) -> None:
    """Bounced on days 0 and 1, then a click on day 20: live, the click found both
    bounces (a customer only mailed is kept the contact-only TTL) and email was avoided.
    Replayed on day 45 in the topic's order, as `moments rebuild` does, each bounce was
    written, deleted (its 30 days were up) and answered APPLIED: the rebuilt customer
    was emailed again. Now the bounces are kept the live lag, and the click finds them."""
    day0 = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
    history = [_email("rb-b1", "rb", "bounced", day0),
               _email("rb-b2", "rb", "bounced", day0 + timedelta(days=1)),
               _click("rb-c1", "rb", day0 + timedelta(days=20))]  # fmt: skip
    clock = [0.0]
    live, rebuilt = (_store(private_redis, clock=lambda: clock[0]) for _ in range(2))
    policy = ContactPolicy(ControlGroup("salt", 0.0))
    try:
        for event in history:  # live: each applied when it happened
            clock[0] = event.ts.timestamp()
            assert await live.apply([event]) == [ApplyStatus.APPLIED]
        clock[0] = (day0 + timedelta(days=45)).timestamp()
        assert await rebuilt.apply(history) == [ApplyStatus.APPLIED] * 3
        for store in (live, rebuilt):
            features = await store.read("rb")
            assert features is not None and features.emails == {"bounced": 2}, features
            assert features.events == 1 and policy.avoids(features, "email")
    finally:
        await live.close()
        await rebuilt.close()


async def test_a_bounce_replayed_alone_is_kept_no_longer_than_the_live_lag(
    private_redis: LocalRedis, admin: aioredis.Redis
) -> None:
    """A bounce to a customer with no activity, replayed 40 days after it (their keys
    expired live 10 days ago): kept a day, for the facts the replay brings next, then
    gone as live; a rebuild brings back no one only mailed long ago."""
    now = time.time()
    store = _store(private_redis, clock=lambda: now)
    k = _keys_of(store, "rb-gone")
    try:
        bounced = datetime.fromtimestamp(now, UTC) - timedelta(days=40)
        assert await store.apply([_email("rb-g1", "rb-gone", "bounced", bounced)]) == [
            ApplyStatus.APPLIED
        ]
        assert DAY_S - 60 <= await admin.ttl(k.profile) <= DAY_S
    finally:
        await store.close()


@pytest.mark.parametrize("order", ["email first", "click first"])
async def test_an_email_dated_a_month_ago_counts_whatever_order_it_comes_in(
    private_redis: LocalRedis, order: str
) -> None:
    """An email sent 31 days ago (beyond the contact-only TTL) and a click now, applied
    now: the email counted only when it came after the click (the profile it found had
    the whole TTL); first, it was written and deleted."""
    now = time.time()
    store = _store(private_redis, clock=lambda: now)
    at = datetime.fromtimestamp(now, UTC)
    mail = _email("ro-m1", "ro", "sent", at - timedelta(days=31))
    click = _click("ro-c1", "ro", at)
    try:
        for event in (mail, click) if order == "email first" else (click, mail):
            assert await store.apply([event]) == [ApplyStatus.APPLIED]
        features = await store.read("ro")
        assert features is not None and features.emails == {"sent": 1}, features
    finally:
        await store.close()
