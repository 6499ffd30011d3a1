"""feature_updates + apply_updates (the pure reference of lua/apply.lua), features and keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feature_store.features import CustomerFeatures, RecentTouchpoint, features_from_hash
from feature_store.keys import CustomerKeys
from feature_store.updates import (
    CONSENT_CHANNELS,
    apply_updates,
    feature_updates,
    recent_item,
    ts_ms,
)
from schemas import (
    Call,
    Consent,
    Email,
    Purchase,
    SocialMention,
    Survey,
    TouchpointEvent,
    WebClick,
    decode_touchpoint,
)

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
T0_MS = 1795424400000  # 2026-11-23T09:00:00Z in epoch milliseconds


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


_counter = iter(range(10**9))


def common(seconds: float = 0.0, customer: str = "c1") -> dict[str, object]:
    return {"event_id": f"e{next(_counter)}", "customer_id": customer, "ts": at(seconds)}


def click(seconds: float = 0.0, category: str | None = None) -> WebClick:
    return WebClick(**common(seconds), page="/p", category=category)


def purchase(amount: float, seconds: float = 0.0, categories: list[str] | None = None) -> Purchase:
    return Purchase(
        **common(seconds),
        order_id=f"o{next(_counter)}",
        amount=amount,
        currency="EUR",
        categories=categories or [],
    )


def consent(channel: str, granted: bool, seconds: float) -> Consent:
    return Consent(**common(seconds), channel=channel, granted=granted)


def survey(score: float, scale: str, seconds: float = 0.0) -> Survey:
    return Survey(**common(seconds), score=score, scale=scale)


def mention(sentiment: float, reach: int | None, seconds: float = 0.0) -> SocialMention:
    return SocialMention(**common(seconds), platform="x", sentiment=sentiment, reach=reach)


def apply_all(events: list[TouchpointEvent], state: dict[str, str] | None = None) -> dict[str, str]:
    state = {} if state is None else state
    for event in events:
        apply_updates(state, feature_updates(event), ts_ms(event))
    return state


# --------------------------------------------------------------------------------------
# ts_ms and recent_item
# --------------------------------------------------------------------------------------


def test_ts_ms_is_epoch_milliseconds() -> None:
    assert ts_ms(click(0)) == T0_MS
    assert ts_ms(click(0.123)) == T0_MS + 123
    event = decode_touchpoint(
        '{"type": "web_click", "event_id": "e", "customer_id": "c",'
        ' "ts": "2026-11-23T11:00:00.250+02:00", "page": "/"}'
    )
    assert ts_ms(event) == T0_MS + 250


@pytest.mark.parametrize(
    "wire_ts",
    [
        "2026-01-01T00:00:00.001Z",
        "2026-11-23T14:05:00.123Z",
        "2026-11-23T14:05:00.999Z",
        "2027-06-30T23:59:59.999Z",
    ],
)
def test_ts_ms_is_exact_for_millisecond_timestamps(wire_ts: str) -> None:
    event = decode_touchpoint(
        f'{{"type": "web_click", "event_id": "e", "customer_id": "c", "ts": "{wire_ts}",'
        ' "page": "/"}'
    )
    expected = (event.ts - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    assert ts_ms(event) == expected


@pytest.mark.parametrize(
    ("wire_ts", "expected"),
    [
        ("2004-03-15T07:55:47.472Z", 1079337347472),
        ("2038-08-15T15:00:50.430Z", 2165497250430),
    ],
)
def test_ts_ms_is_exact_for_all_dates(wire_ts: str, expected: int) -> None:
    event = decode_touchpoint(
        f'{{"type": "web_click", "event_id": "e", "customer_id": "c", "ts": "{wire_ts}",'
        ' "page": "/"}'
    )
    assert (event.ts - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1) == expected
    assert ts_ms(event) == expected


def test_recent_item_has_no_customer_id() -> None:
    event = WebClick(event_id="evt-9", customer_id="secret-customer", ts=at(1.5), page="/")
    item = recent_item(event)
    assert item == f"{T0_MS + 1500}|web_click|evt-9"
    assert "secret-customer" not in item


# --------------------------------------------------------------------------------------
# What each event updates
# --------------------------------------------------------------------------------------


def test_common_updates_for_every_event() -> None:
    event = click(2.0, category="books")
    ms = str(T0_MS + 2000)
    updates = feature_updates(event)
    assert updates[:4] == [
        ("incr", "n", "1"),
        ("incr", "n:web_click", "1"),
        ("min", "first_seen", ms),
        ("max", "last_seen", ms),
    ]
    assert ("incr", "cat:books", "1") in updates


def test_click_without_category_counts_no_category() -> None:
    updates = feature_updates(click(0))
    assert not [u for u in updates if u[1].startswith("cat:")]


def test_counts_per_type() -> None:
    events: list[TouchpointEvent] = [
        click(1),
        click(2),
        click(3),
        purchase(10.0, 4),
        Email(**common(5), action="opened"),
        Email(**common(6), action="opened"),
        Email(**common(7), action="clicked"),
        Call(**common(8), status="started", direction="inbound", reason="billing"),
        survey(4, "csat5", 9),
        consent("email", True, 10),
        mention(0.3, 10, 11),
    ]
    state = apply_all(events)
    assert state["n"] == "11"
    assert state["n:web_click"] == "3"
    assert state["n:purchase"] == "1"
    assert state["n:email"] == "3"
    assert state["n:call"] == "1"
    assert state["n:survey"] == "1"
    assert state["n:consent"] == "1"
    assert state["n:social_mention"] == "1"
    assert state["email:opened"] == "2"
    assert state["email:clicked"] == "1"
    assert state["purchases"] == "1"


def test_call_started_counts_direction_and_reason_and_ended_counts_sentiment() -> None:
    started = Call(**common(0), status="started", direction="inbound", reason="complaint")
    ended = Call(
        **common(60),
        status="ended",
        direction="inbound",
        reason="complaint",
        sentiment=-0.25,
        duration_s=60,
    )
    state = apply_all([started, ended])
    assert state["call:inbound"] == "1"
    assert state["call_reason:complaint"] == "1"  # counted once per call, not per status
    assert state["sentiment_milli"] == "-250"
    assert state["sentiment_n"] == "1"
    silent_end = Call(**common(61), status="ended", direction="outbound", reason="sales")
    common_fields = {"n", "n:call", "first_seen", "last_seen"}
    extra = {f for _, f, _ in feature_updates(silent_end)} - common_fields
    assert extra == set()
    assert not [u for u in feature_updates(started) if u[1].startswith("sentiment")]


def test_spend_is_kept_in_exact_cents() -> None:
    assert 0.1 + 0.2 != 0.3  # the float trap this guards against
    state = apply_all([purchase(0.1), purchase(0.2)])
    assert state["spend_cents"] == "30"
    assert features_from_hash(state, []).spend == 0.3
    state = apply_all([purchase(19.99), purchase(0.01), purchase(1234.56)])
    assert state["spend_cents"] == str(1999 + 1 + 123456)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=30))
def test_spend_sum_is_exact_for_any_cent_amounts(cents: list[int]) -> None:
    state = apply_all([purchase(c / 100) for c in cents])
    assert state["spend_cents"] == str(sum(cents))
    assert state["purchases"] == str(len(cents))


def test_purchase_categories_counted_once_per_purchase() -> None:
    state = apply_all(
        [purchase(5, 0, ["books", "books", "home"]), purchase(5, 1, ["books"]), click(2, "books")]
    )
    assert state["cat:books"] == "3"
    assert state["cat:home"] == "1"


def test_first_last_seen_and_last_purchase_regardless_of_order() -> None:
    events: list[TouchpointEvent] = [
        click(50),
        purchase(1, 10),
        click(5),
        purchase(1, 30),
        click(40),
    ]
    forward = apply_all(events)
    backward = apply_all(list(reversed(events)))
    for state in (forward, backward):
        assert state["first_seen"] == str(T0_MS + 5000)
        assert state["last_seen"] == str(T0_MS + 50000)
        assert state["last_purchase"] == str(T0_MS + 30000)
    features = features_from_hash(forward, [])
    assert features.first_seen == at(5)
    assert features.last_seen == at(50)
    assert features.last_purchase == at(30)


# --------------------------------------------------------------------------------------
# Consent: "latest" semantics
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("reverse", [False, True], ids=["in-order", "out-of-order"])
def test_consent_newer_timestamp_wins_in_any_arrival_order(reverse: bool) -> None:
    granted_then_withdrawn = [consent("email", True, 1), consent("email", False, 2)]
    withdrawn_then_granted = [consent("sms", False, 1), consent("sms", True, 2)]
    events = granted_then_withdrawn + withdrawn_then_granted
    state = apply_all(list(reversed(events)) if reverse else events)
    assert state["consent:email"] == "0"
    assert state["consent:sms"] == "1"
    assert state["consent:email@"] == str(T0_MS + 2000)
    assert state["consent:sms@"] == str(T0_MS + 2000)


@pytest.mark.parametrize("reverse", [False, True], ids=["grant-first", "withdraw-first"])
def test_consent_withdrawal_wins_on_equal_timestamp(reverse: bool) -> None:
    events = [consent("web", True, 3), consent("web", False, 3)]
    state = apply_all(list(reversed(events)) if reverse else events)
    assert state["consent:web"] == "0"
    assert features_from_hash(state, []).consents_to("web") is False


def test_consent_older_event_does_not_override() -> None:
    state = apply_all([consent("call", False, 10)])
    apply_all([consent("call", True, 9)], state)
    assert state["consent:call"] == "0"
    apply_all([consent("call", True, 11)], state)
    assert state["consent:call"] == "1"


def test_consent_all_sets_all_four_channels() -> None:
    state = apply_all([consent("all", False, 1)])
    for channel in ("email", "sms", "call", "web"):
        assert state[f"consent:{channel}"] == "0"
    assert "consent:all" not in state
    assert set(CONSENT_CHANNELS) == {"email", "sms", "call", "web"}
    # a later single-channel grant only changes that channel
    apply_all([consent("web", True, 2)], state)
    assert state["consent:web"] == "1"
    assert state["consent:email"] == state["consent:sms"] == state["consent:call"] == "0"
    # an earlier "all" grant changes nothing
    apply_all([consent("all", True, 0)], state)
    assert [state[f"consent:{c}"] for c in ("email", "sms", "call", "web")] == ["0", "0", "0", "1"]


def test_consent_all_grant_and_channel_withdrawal_at_same_time() -> None:
    for events in (
        [consent("all", True, 5), consent("email", False, 5)],
        [consent("email", False, 5), consent("all", True, 5)],
    ):
        features = features_from_hash(apply_all(events), [])
        assert features.consent == {"email": False, "sms": True, "call": True, "web": True}


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["email", "sms", "call", "web", "all"]),
            st.booleans(),
            st.integers(min_value=0, max_value=4),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_consent_matches_model_latest_then_withdrawal(
    spec: list[tuple[str, bool, int]],
) -> None:
    state = apply_all([consent(ch, granted, s) for ch, granted, s in spec])
    for channel in CONSENT_CHANNELS:
        touching = [(s, granted) for ch, granted, s in spec if ch in (channel, "all")]
        if not touching:
            assert f"consent:{channel}" not in state
            continue
        latest = max(s for s, _ in touching)
        expected = all(granted for s, granted in touching if s == latest)
        assert state[f"consent:{channel}"] == ("1" if expected else "0")


# --------------------------------------------------------------------------------------
# Surveys and mentions
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "scale", "milli"),
    [
        (1, "csat5", "0"),
        (2, "csat5", "250"),
        (3, "csat5", "500"),
        (5, "csat5", "1000"),
        (0, "nps", "0"),
        (7, "nps", "700"),
        (10, "nps", "1000"),
    ],
)
def test_survey_normalised_to_thousandths(score: float, scale: str, milli: str) -> None:
    updates = feature_updates(survey(score, scale))
    assert ("incr", "survey_milli", milli) in updates
    assert ("incr", "survey_n", "1") in updates


def test_survey_average_in_features() -> None:
    state = apply_all([survey(5, "csat5", 0), survey(0, "nps", 1), survey(8, "nps", 2)])
    assert state["survey_milli"] == "1800"
    assert state["survey_n"] == "3"
    assert features_from_hash(state, []).survey == pytest.approx(0.6)


def test_negative_mention_counts_reach() -> None:
    state = apply_all([mention(-0.5, 500, 0), mention(-0.1, None, 1), mention(0.4, 9999, 2)])
    assert state["negative_mentions"] == "2"
    assert state["negative_reach"] == "500"
    assert state["sentiment_milli"] == str(-500 - 100 + 400)
    assert state["sentiment_n"] == "3"
    features = features_from_hash(state, [])
    assert features.negative_mentions == 2
    assert features.negative_reach == 500
    assert features.sentiment == pytest.approx(-0.2 / 3)


def test_positive_or_neutral_mention_is_not_negative() -> None:
    for sentiment in (0.0, 0.7):
        fields = {f for _, f, _ in feature_updates(mention(sentiment, 100))}
        assert "negative_mentions" not in fields
        assert "negative_reach" not in fields


# --------------------------------------------------------------------------------------
# Order independence
# --------------------------------------------------------------------------------------

FIXED_EVENTS: list[TouchpointEvent] = [
    click(3, "electronics"),
    click(1, "home"),
    purchase(0.1, 2, ["electronics"]),
    purchase(0.2, 7, ["home", "books"]),
    purchase(99.99, 5),
    Call(**common(4), status="started", direction="inbound", reason="complaint"),
    Call(**common(6), status="ended", direction="inbound", reason="complaint", sentiment=-0.3),
    Email(**common(8), action="opened"),
    mention(-0.6, 250, 9),
    mention(0.2, None, 9),
    survey(4, "csat5", 10),
    survey(9, "nps", 11),
    consent("email", True, 12),
    consent("email", False, 12),
    consent("all", True, 11),
    consent("sms", False, 13),
    consent("sms", True, 14),
    consent("web", True, 15),
    consent("all", False, 15),
]


@settings(max_examples=150, deadline=None)
@given(st.permutations(FIXED_EVENTS))
def test_any_permutation_gives_the_same_state(order: list[TouchpointEvent]) -> None:
    assert apply_all(list(order)) == apply_all(list(FIXED_EVENTS))


def test_fixed_events_state_is_as_expected() -> None:
    state = apply_all(list(FIXED_EVENTS))
    assert state["spend_cents"] == str(10 + 20 + 9999)
    assert state["first_seen"] == str(T0_MS + 1000)
    assert state["last_seen"] == str(T0_MS + 15000)
    consents = features_from_hash(state, []).consent
    assert consents == {"email": False, "sms": False, "call": False, "web": False}


# --------------------------------------------------------------------------------------
# features_from_hash
# --------------------------------------------------------------------------------------


def test_features_from_hash_builds_customer_features() -> None:
    events: list[TouchpointEvent] = [
        click(1, "electronics"),
        click(2, "electronics"),
        click(3, "home"),
        purchase(12.5, 4, ["electronics", "books"]),
        purchase(7.25, 5, ["books"]),
        survey(5, "csat5", 6),
        survey(3, "csat5", 7),
        Call(**common(8), status="started", direction="outbound", reason="billing"),
        Email(**common(9), action="clicked"),
        consent("sms", False, 10),
        consent("web", True, 10),
    ]
    state = apply_all(events)
    recent = [recent_item(e) for e in reversed(events[-2:])]
    features = features_from_hash(state, recent)
    assert isinstance(features, CustomerFeatures)
    assert features.events == 11
    assert features.by_type == {
        "web_click": 3,
        "purchase": 2,
        "survey": 2,
        "call": 1,
        "email": 1,
        "consent": 2,
    }
    assert features.purchases == 2
    assert features.spend == 19.75
    assert features.categories == {"electronics": 3, "home": 1, "books": 2}
    assert features.top_categories() == ["electronics", "books", "home"]
    assert features.top_categories(1) == ["electronics"]
    assert features.call_reasons == {"billing": 1}
    assert features.emails == {"clicked": 1}
    assert features.survey == pytest.approx(0.75)
    assert features.sentiment is None
    assert features.consent == {"sms": False, "web": True}
    assert features.consents_to("sms") is False
    assert features.consents_to("web") is True
    assert features.consents_to("email") is True  # opt-out: assumed until withdrawn
    assert features.first_seen == at(1)
    assert features.last_seen == at(10)
    assert features.last_purchase == at(5)
    assert features.recent == [
        RecentTouchpoint(at(10), "consent", events[-1].event_id),
        RecentTouchpoint(at(10), "consent", events[-2].event_id),
    ]


def test_features_from_empty_hash() -> None:
    features = features_from_hash({}, [])
    assert features == CustomerFeatures()
    assert features.survey is None and features.sentiment is None
    assert features.spend == 0.0
    assert features.first_seen is None
    assert features.top_categories() == []


def test_top_categories_ties_break_by_name() -> None:
    features = CustomerFeatures(categories={"zoo": 2, "art": 2, "bee": 5, "cat": 1})
    assert features.top_categories() == ["bee", "art", "zoo"]
    assert features.top_categories(10) == ["bee", "art", "zoo", "cat"]


def test_recent_item_with_pipe_in_event_id_parses_back() -> None:
    event = Email(event_id="ev|with|pipes", customer_id="c", ts=at(0), action="sent")
    features = features_from_hash({}, [recent_item(event)])
    assert features.recent == [RecentTouchpoint(at(0), "email", "ev|with|pipes")]


# --------------------------------------------------------------------------------------
# CustomerKeys
# --------------------------------------------------------------------------------------


def test_keys_of_one_customer_share_one_hash_tag() -> None:
    keys = CustomerKeys(b"s3cret", prefix="m")
    ks = keys.for_customer("cust-000123")
    assert len(ks.all()) == 3
    assert len(set(ks.all())) == 3
    for key in ks.all():
        assert key.startswith("m:")
        # Redis Cluster hashes the text between the first "{" and the next "}"
        start = key.index("{")
        assert key[start + 1 : key.index("}", start)] == ks.tag
    assert ks.profile.endswith(":p")
    assert ks.seen.endswith(":seen")
    assert ks.recent.endswith(":recent")


def test_keys_are_stable_and_do_not_contain_the_raw_id() -> None:
    keys = CustomerKeys(b"s3cret")
    for customer_id in ("cust-000123", "alice@example.com", "4711", "ÄÖÜ-unicode"):
        ks = keys.for_customer(customer_id)
        assert ks == CustomerKeys(b"s3cret").for_customer(customer_id)
        assert ks.tag == keys.pseudonym(customer_id)
        for key in ks.all():
            assert customer_id not in key


def test_different_customers_get_different_tags() -> None:
    keys = CustomerKeys(b"s3cret")
    tags = {keys.for_customer(f"cust-{i}").tag for i in range(2000)}
    assert len(tags) == 2000


def test_different_secrets_give_different_tags() -> None:
    a = CustomerKeys(b"secret-a").for_customer("cust-1")
    b = CustomerKeys(b"secret-b").for_customer("cust-1")
    assert a.tag != b.tag
    assert a.profile != b.profile


def test_prefix_is_used() -> None:
    ks = CustomerKeys(b"s", prefix="prod").for_customer("c")
    assert all(key.startswith("prod:{") for key in ks.all())


def test_empty_secret_raises() -> None:
    with pytest.raises(ValueError, match="secret"):
        CustomerKeys(b"")
