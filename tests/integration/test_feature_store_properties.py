"""The Redis store agrees with the pure reference on any sequence of facts (real Redis)."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from feature_store import (
    ContactCeilings,
    Fact,
    FeatureStore,
    StoreConfig,
    offers_shown_fact,
    touchpoint_fact,
)
from feature_store.facts import RESOLUTIONS, SHOWN_KEPT_DAYS, Resolution
from feature_store.features import build_features
from feature_store.money import Money
from feature_store.reference import CustomerState
from feature_store.rooms import CURRENCY_ROOM, TALLY_ROOM, UNCONVERTED_CURRENCIES
from schemas import Call, Consent, Email, Purchase, SocialMention, Survey, WebClick
from streams.services import Services

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
CUSTOMERS = ["alice", "bob", "carol"]
OFFERS = ["book-club", "spring-sale", "winter-sale"]

# Most events within the last day or month, some up to two years old (lifetime only),
# and a few dated up to 15 minutes ahead (the clock skew a worker accepts).
offsets = st.one_of(
    st.integers(-900, 0),
    st.integers(0, 3 * 3600),
    st.integers(0, 40 * 86400),
    st.integers(0, 800 * 86400),
)
ts = offsets.map(lambda s: NOW - timedelta(seconds=s, milliseconds=s % 997))
zones = st.none() | st.sampled_from(["Europe/Paris", "Asia/Kolkata", "America/New_York"])
common = {"event_id": st.just(""), "customer_id": st.sampled_from(CUSTOMERS), "ts": ts,
          "timezone": zones}  # fmt: skip
sentiment = st.floats(-1, 1, allow_nan=False).map(lambda x: round(x, 3))
categories = st.sampled_from(["books", "home", "sports", "travel"])
events = st.one_of(
    st.builds(WebClick, page=st.just("/p"), category=st.none() | categories, **common),
    st.builds(
        Call,
        status=st.sampled_from(["started", "ended"]),
        direction=st.sampled_from(["inbound", "outbound"]),
        reason=st.sampled_from(["support", "complaint", "cancel"]),
        sentiment=st.none() | sentiment,
        **common,
    ),
    st.builds(Email, action=st.sampled_from(["sent", "delivered", "bounced", "opened",
                                             "clicked", "unsubscribed"]), **common),
    st.builds(SocialMention, platform=st.just("x"), sentiment=sentiment,
              reach=st.none() | st.integers(0, 10**6), **common),
    st.builds(Purchase, order_id=st.just("o"), amount=st.floats(0, 5000).map(lambda a: round(a, 2)),
              currency=st.just("EUR"), categories=st.lists(categories, max_size=3), **common),
    st.builds(Survey, score=st.integers(1, 5), scale=st.just("csat5"), **common),
    st.builds(Survey, score=st.integers(0, 10), scale=st.just("nps"), **common),
    st.builds(Consent, channel=st.sampled_from(["email", "web", "all"]), granted=st.booleans(),
              **common),
)  # fmt: skip


@st.composite
def histories(draw: st.DrawFn) -> list[Any]:
    """Events with unique ids, then redeliveries of some of them, in a shuffled order."""
    base = draw(st.lists(events, min_size=1, max_size=40))
    unique = [e.__class__(**{**_fields(e), "event_id": f"e{i}"}) for i, e in enumerate(base)]
    replays = draw(st.lists(st.sampled_from(unique), max_size=15))
    return draw(st.permutations(unique + replays))


@st.composite
def reused_ids(draw: st.DrawFn) -> list[Any]:
    """Events whose ids come from a handful, so that one id is used again with another
    payload (a producer that keys "subscribe" and "unsubscribe" alike), in any order."""
    base = draw(st.lists(events, min_size=1, max_size=30))
    ids = st.integers(0, 4).map(lambda i: f"r{i}")
    return [e.__class__(**{**_fields(e), "event_id": draw(ids)}) for e in base]


def _fields(event: Any) -> dict[str, Any]:
    return {f: getattr(event, f) for f in event.__struct_fields__}


def _run(
    services: Services,
    history: list[Any],
    split: int,
    contacts: Sequence[Fact] = (),
    advance_s: int = 0,
    replays_as_reference: bool = False,
) -> None:
    """Apply the facts ``split`` at a time, the clock moving ``advance_s`` on after each
    round trip (windows move along with it, as live), to Redis and the reference (and
    the replay of them all: as the reference says with ``replays_as_reference``)."""

    async def scenario() -> None:
        prefix = f"prop{uuid.uuid4().hex[:8]}"
        config = StoreConfig(secret=b"prop-secret", prefix=prefix)
        clock = [NOW_MS]  # the store's and the reference's now (ms)
        store = FeatureStore.from_url(
            services.redis_url,
            config,
            clock=lambda: clock[0] / 1000,
        )
        reference: dict[str, CustomerState] = defaultdict(CustomerState)
        try:
            facts = [touchpoint_fact(e) for e in history]
            # plus contacts Moments made, also idempotent
            facts += [  # offers come and go: when each was last shown is kept a year
                offers_shown_fact(f"d{i}", e.customer_id, "web", [OFFERS[i % 3]], e.ts)
                for i, e in enumerate(history[:5])
            ]
            facts += contacts  # with ceilings: applied unless over one
            want: list[int] = []
            got: list[int] = []
            for start in range(0, len(facts), split):
                chunk = facts[start : start + split]
                want += [reference[f.customer_id].apply(f, clock[0]) for f in chunk]
                got += [int(s) for s in await store.apply_facts(chunk)]
                clock[0] += advance_s * 1000
            assert got == want
            # a replay of everything changes nothing: duplicates, or too old to decide on
            # (a contact refused over a ceiling was not applied: it is refused again)
            too_old = [clock[0] - f.ts_ms >= config.ttl_s * 1000 for f in facts]
            again = [int(s) for s in await store.apply_facts(facts)]
            if replays_as_reference:
                assert again == [reference[f.customer_id].apply(f, clock[0]) for f in facts]
            else:
                assert again == [
                    5 if first == 5 else 4 if old else 0
                    for first, old in zip(want, too_old, strict=True)
                ]
            for customer, state in reference.items():
                raw = await store.raw(customer)
                assert raw["profile"] == state.profile
                assert raw["windows"] == state.windows
                assert raw["recent"] == state.recent
                assert raw["contacts"] == state.contacts
                assert raw["optouts"] == state.optouts
                expected = build_features(  # a read at the clock's now: ahead too
                    state.optouts | state.profile,
                    state.windows,
                    list(state.recent),
                    clock[0],
                    state.contacts,
                    ahead_ms=int(config.future_skew_s * 1000),
                )
                if not state.profile and not state.optouts:  # only facts too old: unknown
                    expected = None
                assert await store.read(customer) == expected
        finally:
            await store.close()

    asyncio.run(scenario())


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories(), split=st.integers(1, 25), advance_s=st.sampled_from(
    [0, 0, 60, 3600, 2 * 3600]))  # fmt: skip
def test_store_matches_reference(
    kafka_redis: Services, history: list[Any], split: int, advance_s: int
) -> None:
    """Any facts, in any order, applied in round trips of any size while the clock moves
    on (at most 60 facts, 2 hours a round trip: well within the 8-day dedupe horizon)."""
    _run(kafka_redis, history, split, advance_s=advance_s)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=reused_ids(), split=st.integers(1, 25))
def test_store_matches_reference_with_ids_used_again(
    kafka_redis: Services, history: list[Any], split: int
) -> None:
    """An id used again for another payload: nothing of it is applied again but a
    withdrawal it carries, alike in Redis and the reference, replayed or not."""
    _run(kafka_redis, history, split, replays_as_reference=True)


# some contacts a day's edge before now, or right at the edge of a cool-down
edges_s = st.sampled_from([0, 60, 3600, 86400, 6 * 86400, 7 * 86400, 8 * 86400])
caps = st.tuples(st.sampled_from([("shown:web",), ("shown:web", "shown:email"),
                                   ("offer:book-club",)]),
                 st.sampled_from([1, 7]), st.integers(0, 3))  # fmt: skip
cool_downs = st.tuples(st.just("last_shown:book-club"), st.integers(-3, 3 * 86400) | edges_s)
# whose days the counts count: UTC's, or a local midnight off UTC's by hours, :30 or :45,
# from UTC-12 to UTC+14 (Europe's late in the UTC day: read from the quarters after it)
days_of = st.sampled_from(["UTC", "Australia/Sydney", "America/New_York", "Asia/Kolkata",
                           "Asia/Kathmandu", "Pacific/Chatham", "Etc/GMT+12", "Europe/Paris",
                           "Asia/Tokyo", "Pacific/Kiritimati"])  # fmt: skip
ceilings = st.builds(
    ContactCeilings,
    st.lists(caps, max_size=3).map(tuple),
    st.lists(cool_downs, max_size=1).map(
        lambda c: tuple((field, NOW_MS - s * 1000) for field, s in c)
    ),
    days_of,
    # a consent withdrawn (the history's consent events: email, web or all) refuses it
    st.sampled_from([(), ("consent:web",), ("consent:email", "subscribed:email")]),
)
guarded = st.lists(
    # ages from 15 minutes ahead (a process's clock running fast: past midnight, its
    # contact is in tomorrow's bucket, which today's ceilings count)
    st.tuples(st.sampled_from(["web", "email"]), st.sampled_from(CUSTOMERS),
              st.integers(-900, 9 * 86400) | edges_s, ceilings,
              st.booleans() | st.just(False)),  # recorded by a Moments before the quarters
    max_size=25,
)  # fmt: skip


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories(), split=st.integers(1, 25), contacts=guarded)
@example(  # shown last right at the edge of the cool-down: it has run out
    history=[WebClick(event_id="e0", customer_id="alice", ts=NOW, page="/p")],
    split=1,
    contacts=[("web", "alice", 60, ContactCeilings(), False),
              ("web", "alice", 0, ContactCeilings(cool_downs=(("last_shown:book-club",
                                                               NOW_MS - 60_000),)), False)],
)  # fmt: skip
@example(  # a contact dated 00:01 by a clock ahead, then one of 23:59 the day before
    history=[WebClick(event_id="e0", customer_id="alice", ts=NOW, page="/p")],
    split=1,
    contacts=[("web", "alice", 14 * 3600 - 60, ContactCeilings(), False),
              ("web", "alice", 14 * 3600 + 60, ContactCeilings(((("shown:web",), 1, 1),)),
               False)],
)  # fmt: skip
@example(  # 09:00 and 11:00 in Sydney (22:00 and 00:00 UTC): one email a day, refused
    history=[WebClick(event_id="e0", customer_id="alice", ts=NOW, page="/p")],
    split=1,
    contacts=[("email", "alice", 16 * 3600, ContactCeilings(), False),
              ("email", "alice", 14 * 3600, ContactCeilings(((("shown:email",), 1, 1),),
                                                            timezone="Australia/Sydney"), False)],
)  # fmt: skip
@example(  # Paris: an email at 23:30 on the 22nd (22:30 UTC), one at 00:30 on the 23rd,
    # then one at 09:00, two a day: with the first recorded by an older Moments (no
    # quarter), the UTC day is read before the midnight and counts both (refused, strict);
    # in its quarter, the day is whole and read after the midnight: one (applied)
    history=[WebClick(event_id="e0", customer_id="alice", ts=NOW, page="/p")],
    split=1,
    contacts=[("email", "alice", 55800, ContactCeilings(), True),
              ("email", "alice", 52200, ContactCeilings(), False),
              ("email", "alice", 21600, ContactCeilings(((("shown:email",), 1, 2),),
                                                        timezone="Europe/Paris"), False)],
)  # fmt: skip
@example(
    history=[WebClick(event_id="e0", customer_id="alice", ts=NOW, page="/p")],
    split=1,
    contacts=[("email", "alice", 55800, ContactCeilings(), False),
              ("email", "alice", 52200, ContactCeilings(), False),
              ("email", "alice", 21600, ContactCeilings(((("shown:email",), 1, 2),),
                                                        timezone="Europe/Paris"), False)],
)  # fmt: skip
@example(  # web consent withdrawn since the read: its contact is refused (still subscribed
    # to email, whose consent `all` withdrew too: applied, as only the subscription is checked)
    history=[WebClick(event_id="e0", customer_id="alice", ts=NOW, page="/p"),
             Consent(event_id="e1", customer_id="alice", ts=NOW, channel="all", granted=False)],
    split=2,
    contacts=[("web", "alice", 0, ContactCeilings(withdrawn=("consent:web",)), False),
              ("email", "alice", 0, ContactCeilings(withdrawn=("subscribed:email",)), False)],
)  # fmt: skip
def test_contacts_within_ceilings_match_reference(
    kafka_redis: Services, history: list[Any], split: int, contacts: list[Any]
) -> None:
    """Contacts whose ceilings the store checks: applied, or refused (5, nothing written),
    as the reference says, whatever came before them."""
    facts = [
        _before_quarters(f) if legacy else f
        for f, legacy in (
            (offers_shown_fact(f"g{i}", customer, channel, ["book-club"],
                               NOW - timedelta(seconds=age), ceilings=limits), legacy)
            for i, (channel, customer, age, limits, legacy) in enumerate(contacts)
        )
    ]  # fmt: skip
    _run(kafka_redis, history, split, facts)


def _before_quarters(contact: Fact) -> Fact:
    """``contact`` as a Moments from before the quarter-hour buckets recorded it: its
    daily buckets alone, no ceilings."""
    updates = tuple(u for u in contact.updates if u[0] != "wq")
    return Fact(contact.fact_id, contact.customer_id, contact.ts_ms, updates, contact=True)


def test_events_older_than_every_window_touch_only_lifetime(kafka_redis: Services) -> None:
    old = WebClick(event_id="old", customer_id="dave", ts=NOW - timedelta(days=500), page="/")
    new = WebClick(event_id="new", customer_id="dave", ts=NOW, page="/")
    _run(kafka_redis, [new, old], split=1)
    _run(kafka_redis, [old, new], split=2)


@pytest.mark.parametrize("split", [1, 3])
def test_categories_fill_the_profile_to_its_room_as_in_the_reference(
    kafka_redis: Services, split: int
) -> None:
    """Purchases naming 1,300 categories: the profile takes new ones up to TALLY_ROOM
    fields, as the reference does, and known ones still count after that."""
    names = [f"item {n}" for n in range(1300)]
    history = [
        Purchase(event_id=f"p{i}", customer_id="fay", order_id=f"o{i}", amount=5.0,
                 currency="EUR", ts=NOW - timedelta(hours=5 - i), categories=chunk)
        for i, chunk in enumerate([names[:400], names[400:800], names[800:1200], names[:1300]])
    ]  # fmt: skip
    _run(kafka_redis, history, split=split)


@pytest.mark.parametrize("resolution", RESOLUTIONS, ids=lambda r: r.name)
@pytest.mark.parametrize("order", ["oldest_first", "newest_first"])
def test_window_edges(kafka_redis: Services, resolution: Resolution, order: str) -> None:
    """Buckets exactly `keep` apart: the older one is pruned, one closer is kept."""
    newest = (NOW_MS // resolution.size_ms) * resolution.size_ms
    stamps = [newest - resolution.keep * resolution.size_ms,
              newest - (resolution.keep - 1) * resolution.size_ms, newest]  # fmt: skip
    history = [
        Purchase(event_id=f"p{i}", customer_id="erin", order_id="o", amount=10.0, currency="EUR",
                 ts=datetime.fromtimestamp(ms / 1000, UTC), categories=["books"])
        for i, ms in enumerate(stamps)
    ]  # fmt: skip
    if order == "newest_first":
        history.reverse()
    _run(kafka_redis, history, split=1)


@pytest.mark.parametrize("order", ["oldest_first", "newest_first", "mixed"])
def test_offers_shown_over_a_year_before_the_newest_contact_are_dropped(
    kafka_redis: Services, order: str
) -> None:
    """When each offer was last shown goes once it is over SHOWN_KEPT_DAYS before the
    customer's newest contact, in Redis as in the reference, whatever the order."""
    days = {"gone": SHOWN_KEPT_DAYS + 3, "edge": SHOWN_KEPT_DAYS - 1, "kept": 200, "new": 0}
    contacts = [offers_shown_fact(f"y-{offer}", "frank", "web", [offer], NOW - timedelta(days=d))
                for offer, d in days.items()]  # fmt: skip
    if order == "newest_first":
        contacts.reverse()
    elif order == "mixed":
        contacts = [contacts[1], contacts[3], contacts[0], contacts[2]]
    history = [WebClick(event_id="f0", customer_id="frank", ts=NOW, page="/p")]
    _run(kafka_redis, history, split=1, contacts=contacts)
    state = CustomerState()
    for fact in [touchpoint_fact(history[0]), *contacts]:
        state.apply(fact, NOW_MS)
    assert {k for k in state.profile if k.startswith("last_shown:")} == {
        "last_shown:edge", "last_shown:kept", "last_shown:new"
    }  # fmt: skip


def test_times_last_shown_that_are_no_whole_number_are_kept_alike(kafka_redis: Services) -> None:
    """A value a faulty tool left where a time should be is read alike by apply.lua and
    the reference: only whole numbers of digits are times (Lua's tonumber also reads
    '0x10', Python's float '1_000')."""

    async def scenario() -> None:
        config = StoreConfig(secret=b"prop-secret", prefix=f"prop{uuid.uuid4().hex[:8]}")
        store = FeatureStore.from_url(kafka_redis.redis_url, config, clock=lambda: NOW_MS / 1000)
        reference = CustomerState()
        try:
            first = [touchpoint_fact(WebClick(event_id="g0", customer_id="gina", ts=NOW,
                                              page="/p")),
                     offers_shown_fact("g-old", "gina", "web", ["old"],
                                       NOW - timedelta(days=SHOWN_KEPT_DAYS + 10))]  # fmt: skip
            for fact in first:
                reference.apply(fact, NOW_MS)
            await store.apply_facts(first)
            corrupt = {"last_shown:hex": "0x10", "last_shown:under": "1_000",
                       "last_shown:neg": "-5", "last_shown:space": " 7"}  # fmt: skip
            profile = store._keys.for_customer("gina").profile
            await store._conn.client.hset(profile, mapping=corrupt)
            reference.profile.update(corrupt)
            newest = offers_shown_fact("g-new", "gina", "email", ["new"], NOW)
            assert [int(s) for s in await store.apply_facts([newest])] == [
                reference.apply(newest, NOW_MS)
            ]
            assert (await store.raw("gina"))["profile"] == reference.profile
            kept = {k for k in reference.profile if k.startswith("last_shown:")}
            assert kept == {"last_shown:hex", "last_shown:under", "last_shown:space",
                            "last_shown:new"}  # fmt: skip
        finally:
            await store.close()

    asyncio.run(scenario())


def test_a_profile_from_before_the_category_count_matches_the_reference(
    kafka_redis: Services,
) -> None:
    """Categories written before `tallied` was kept are counted, once, by the first new
    one, in Redis as in the reference."""

    async def scenario() -> None:
        prefix = f"prop{uuid.uuid4().hex[:8]}"
        store = FeatureStore.from_url(kafka_redis.redis_url, StoreConfig(b"s", prefix),
                                      clock=lambda: NOW_MS / 1000)  # fmt: skip
        older = {f"cat:old-{n}": "1" for n in range(TALLY_ROOM - 2)} | {"n": "1"}
        client = aioredis.Redis.from_url(kafka_redis.redis_url, decode_responses=True)
        try:
            await client.hset(store._keys.for_customer("gil").profile, mapping=older)
            buy = Purchase(event_id="p", customer_id="gil", order_id="o", amount=5.0,
                           currency="EUR", ts=NOW, categories=["a", "b", "c", "d"])  # fmt: skip
            state = CustomerState(profile=dict(older))
            want = state.apply(touchpoint_fact(buy), NOW_MS)
            assert [int(s) for s in await store.apply([buy])] == [want]
            assert (await store.raw("gil"))["profile"] == state.profile
            assert state.profile["tallied"] == str(TALLY_ROOM)
        finally:
            await client.aclose()
            await store.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("before_the_count", [False, True])
def test_currencies_without_a_rate_fill_their_room_as_in_the_reference(
    kafka_redis: Services, before_the_count: bool
) -> None:
    """Purchases in 40 currencies with no rate (a producer sending country codes): Redis
    keeps the spend of the first CURRENCY_ROOM apart, as the reference does, and counts
    the rest as unconverted only (each made a profile field, for good). A profile from
    before the count has its currencies counted once, by the first new one."""

    async def scenario() -> None:
        money = Money.parse("EUR", "USD=0.92")
        config = StoreConfig(b"s", f"prop{uuid.uuid4().hex[:8]}", money=money)
        store = FeatureStore.from_url(kafka_redis.redis_url, config, clock=lambda: NOW_MS / 1000)
        codes = [f"{a}{b}X" for a in "ABCDEFGH" for b in "ABCDE"]
        older = {f"spend_unconverted:OL{c}": "100" for c in "ABC"} | {"n": "1"}
        state = CustomerState(profile=dict(older) if before_the_count else {})
        client = aioredis.Redis.from_url(kafka_redis.redis_url, decode_responses=True)
        try:
            if before_the_count:
                await client.hset(store._keys.for_customer("hal").profile, mapping=older)
            buys = [Purchase(event_id=f"p{i}", customer_id="hal", order_id=f"o{i}", amount=2.5,
                             currency=code, ts=NOW - timedelta(minutes=50 - i))
                    for i, code in enumerate([*codes, codes[0], "USD"])]  # fmt: skip
            want = [state.apply(touchpoint_fact(b, money), NOW_MS) for b in buys]
            assert [int(s) for s in await store.apply(buys[:30])] == want[:30]
            assert [int(s) for s in await store.apply(buys[30:])] == want[30:]
            profile = (await store.raw("hal"))["profile"]
            assert profile == state.profile
            kept = {k for k in profile if k.startswith("spend_unconverted:")}
            assert len(kept) == CURRENCY_ROOM  # was one field a currency: 40
            assert profile[UNCONVERTED_CURRENCIES] == str(CURRENCY_ROOM)
            first = CURRENCY_ROOM - (3 if before_the_count else 0)
            olds = {k for k in older if k.startswith("spend_unconverted:")}
            assert kept == {f"spend_unconverted:{c}" for c in codes[:first]} | (
                olds if before_the_count else set()
            )  # the first ones
            assert profile[f"spend_unconverted:{codes[0]}"] == "500"  # a kept one still adds
            assert profile["purchases_unconverted"] == str(len(codes) + 1)
        finally:
            await client.aclose()
            await store.close()

    asyncio.run(scenario())
