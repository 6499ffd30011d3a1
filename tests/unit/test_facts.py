"""feature_store.facts: what each touchpoint and each contact Moments made updates."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feature_store import facts
from feature_store.contact_facts import contact_id, intervention_fact, offers_shown_fact
from feature_store.facts import (
    CONSENT_CHANNELS,
    RESOLUTIONS,
    WITHDRAWAL_FIELDS,
    Fact,
    recent_entry,
    touchpoint_fact,
    touchpoint_updates,
    ts_ms,
)
from feature_store.rooms import lua_rooms
from schemas import TouchpointEvent, WebClick, decode_touchpoint
from tests.unit.factories import (
    DAY_MS,
    MINUTE_MS,
    T0,
    T0_MS,
    at,
    call_ended,
    call_started,
    click,
    consent,
    email,
    mention,
    purchase,
    survey,
)

LIFETIME_OPS = {"incr", "tally", "max", "min", "latest"}
WINDOW_OPS = {"wm", "wh", "wd", "wk", "wq"}


def fields_of(updates: list[tuple[str, str, str]]) -> set[str]:
    return {f for _, f, _ in updates}


def one_of_each() -> list[TouchpointEvent]:
    return [
        click(1, "books"),
        click(2),
        call_started("complaint", 3),
        call_ended(-0.25, 4),
        call_ended(None, 5),
        email("opened", 6),
        mention(-0.5, 500, 7),
        mention(0.5, None, 8),
        purchase(12.5, 9, ["books", "home"]),
        survey(4, "csat5", 10),
        survey(7, "nps", 11),
        consent("all", False, 12),
        consent("email", True, 13),
    ]


# --------------------------------------------------------------------------------------
# ts_ms
# --------------------------------------------------------------------------------------


def test_ts_ms_is_epoch_milliseconds() -> None:
    assert ts_ms(T0) == T0_MS
    assert ts_ms(at(0.123)) == T0_MS + 123
    assert ts_ms(datetime(1970, 1, 1, tzinfo=UTC)) == 0
    plus_two = timezone(timedelta(hours=2))
    assert ts_ms(datetime(2026, 11, 23, 11, 0, 0, 250_000, tzinfo=plus_two)) == T0_MS + 250


def test_ts_ms_of_decoded_wire_timestamp() -> None:
    event = decode_touchpoint(
        '{"type": "web_click", "event_id": "e", "customer_id": "c",'
        ' "ts": "2026-11-23T11:00:00.250+02:00", "page": "/"}'
    )
    assert ts_ms(event.ts) == T0_MS + 250
    assert touchpoint_fact(event).ts_ms == T0_MS + 250


@pytest.mark.parametrize(
    ("wire_ts", "expected"),
    [
        # float ``timestamp() * 1000`` truncates both of these one millisecond low
        ("2004-03-15T07:55:47.472Z", 1079337347472),
        ("2038-08-15T15:00:50.430Z", 2165497250430),
        ("2026-01-01T00:00:00.001Z", 1767225600001),
        ("2026-11-23T14:05:00.999Z", 1795442700999),
    ],
)
def test_ts_ms_is_exact_for_all_dates(wire_ts: str, expected: int) -> None:
    event = decode_touchpoint(
        f'{{"type": "web_click", "event_id": "e", "customer_id": "c", "ts": "{wire_ts}",'
        ' "page": "/"}'
    )
    assert ts_ms(event.ts) == expected


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(1970, 1, 1),
        max_value=datetime(2200, 1, 1),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7)), timezone.max]),
    )
)
def test_ts_ms_matches_calendar_arithmetic(ts: datetime) -> None:
    utc = ts.astimezone(UTC)
    expected = calendar.timegm(utc.timetuple()) * 1000 + utc.microsecond // 1000
    assert ts_ms(ts) == expected


# --------------------------------------------------------------------------------------
# The fact of a touchpoint
# --------------------------------------------------------------------------------------


def test_recent_entry_has_no_customer_id() -> None:
    event = WebClick(event_id="evt-9", customer_id="secret-customer", ts=at(1.5), page="/")
    entry = recent_entry(event)
    assert entry == f"{T0_MS + 1500}|web_click|evt-9"
    assert "secret-customer" not in entry


def test_touchpoint_fact_fields() -> None:
    event = purchase(10.0, 2.5)
    fact = touchpoint_fact(event)
    assert fact == Fact(
        fact_id=f"t:{event.event_id}",
        customer_id="c1",
        ts_ms=T0_MS + 2500,
        updates=tuple(touchpoint_updates(event)),
        recent=recent_entry(event),
    )
    assert fact.contact is False


@pytest.mark.parametrize("event", one_of_each(), ids=lambda e: e.kind)
def test_every_touchpoint_counts_activity_and_first_last_seen(event: TouchpointEvent) -> None:
    ups = touchpoint_updates(event)
    ms = str(ts_ms(event.ts))
    kind = event.kind
    assert ups[0] == ("incr", "n", "1")
    for update in [
        ("incr", f"n:{kind}", "1"),
        ("wm", f"n:{kind}", "1"),
        ("wh", f"n:{kind}", "1"),
        ("wd", f"n:{kind}", "1"),
        ("min", "first_seen", ms),
        ("max", "last_seen", ms),
    ]:
        assert update in ups
    assert not [u for u in ups if u[0] == "wk" and u[1].startswith("n:")]  # no weekly activity


@pytest.mark.parametrize(
    ("event", "channel"),
    [
        (click(), "web"),
        (call_started(), "call"),
        (email("opened"), "email"),
        (email("sent"), None),  # the business's doing, not the customer's
        (mention(0.1, 1), "social"),
        (purchase(1.0), "shop"),
        (survey(3, "csat5"), "survey"),
        (consent("web", True, 0), None),
    ],
    ids=lambda x: getattr(x, "kind", str(x)),
)
def test_channel_activity(event: TouchpointEvent, channel: str | None) -> None:
    channels = {(op, f) for op, f, _ in touchpoint_updates(event) if f.startswith("ch:")}
    if channel is None:
        assert channels == set()
    else:
        assert channels == {(op, f"ch:{channel}") for op in ("incr", "wm", "wh", "wd")}


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(one_of_each()))
def test_updates_use_known_ops_and_integer_values(event: TouchpointEvent) -> None:
    """Redis HINCRBY and the ms comparisons need integers; consent values are 0/1."""
    for op, field, value in touchpoint_updates(event):
        assert op in LIFETIME_OPS | WINDOW_OPS
        assert "|" not in field  # the windows hash uses "|" to split bucket and metric
        int(value)
        if op == "latest":
            assert value in ("0", "1")


def test_click_category() -> None:
    assert ("tally", "cat:books", "1") in touchpoint_updates(click(0, "books"))
    assert ("wd", "cat:books", "1") in touchpoint_updates(click(0, "books"))
    assert not [f for f in fields_of(touchpoint_updates(click(0))) if f.startswith("cat:")]


def test_call_started_counts_direction_reason_and_complaints() -> None:
    ups = touchpoint_updates(call_started("complaint", direction="outbound"))
    assert ("incr", "call:outbound", "1") in ups
    assert ("incr", "call_reason:complaint", "1") in ups
    assert ("wd", "complaints", "1") in ups
    assert not [f for f in fields_of(ups) if "sent" in f]
    assert "complaints" not in fields_of(touchpoint_updates(call_started("billing")))


def test_call_ended_counts_sentiment_only() -> None:
    ups = touchpoint_updates(call_ended(-0.25, reason="complaint"))
    for update in [
        ("incr", "call_sent_milli", "-250"),
        ("incr", "call_sent_n", "1"),
        ("wd", "call_sent_milli", "-250"),
        ("wd", "call_sent_n", "1"),
    ]:
        assert update in ups
    # the reason and direction are counted once per call, when it starts
    assert not [f for f in fields_of(ups) if f.startswith(("call:", "call_reason:"))]
    assert "complaints" not in fields_of(ups)
    common = fields_of(touchpoint_updates(click())) - {"n:web_click", "ch:web"}
    silent = fields_of(touchpoint_updates(call_ended(None)))
    assert silent - common == {"n:call", "ch:call"}


def test_email_action() -> None:
    assert ("incr", "email:unsubscribed", "1") in touchpoint_updates(email("unsubscribed"))


def test_negative_mention_counts_reach() -> None:
    ups = touchpoint_updates(mention(-0.5, 500))
    for update in [
        ("incr", "negative_mentions", "1"),
        ("incr", "negative_reach", "500"),
        ("wd", "negative_mentions", "1"),
        ("wd", "negative_reach", "500"),
        ("incr", "social_sent_milli", "-500"),
        ("wd", "social_sent_n", "1"),
    ]:
        assert update in ups
    assert ("incr", "negative_reach", "0") in touchpoint_updates(mention(-0.1, None))


@pytest.mark.parametrize("sentiment", [0.0, 0.7])
def test_neutral_or_positive_mention_is_not_negative(sentiment: float) -> None:
    ups = touchpoint_updates(mention(sentiment, 100))
    assert not fields_of(ups) & {"negative_mentions", "negative_reach"}
    assert ("incr", "social_sent_milli", str(round(sentiment * 1000))) in ups


@pytest.mark.parametrize(
    ("amount", "cents"),
    [(0.1, "10"), (0.2, "20"), (19.99, "1999"), (0.01, "1"), (1234.56, "123456"), (0.0, "0")],
)
def test_purchase_amount_in_exact_cents(amount: float, cents: str) -> None:
    ups = touchpoint_updates(purchase(amount))
    for op in ("incr", "wd", "wk"):
        assert (op, "spend_cents", cents) in ups
        assert (op, "purchases", "1") in ups
    assert ("max", "last_purchase", str(T0_MS)) in ups


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=10**11))
def test_purchase_cents_are_exact_for_any_cent_amount(cents: int) -> None:
    assert ("incr", "spend_cents", str(cents)) in touchpoint_updates(purchase(cents / 100))


def test_an_empty_category_is_no_taste_in_a_purchase_as_in_a_click() -> None:
    ups = touchpoint_updates(purchase(5.0, 0, ["", "books"]))
    assert [f for f in fields_of(ups) if f.startswith("cat:")] == ["cat:books"]
    assert not [f for f in fields_of(touchpoint_updates(click(0, ""))) if f.startswith("cat:")]


def test_purchase_categories_once_each_in_name_order() -> None:
    ups = touchpoint_updates(purchase(5.0, 0, ["home", "books", "home"]))
    assert [(op, f) for op, f, _ in ups if f.startswith("cat:")] == [
        ("tally", "cat:books"),
        ("wd", "cat:books"),
        ("tally", "cat:home"),
        ("wd", "cat:home"),
    ]


@pytest.mark.parametrize(
    ("score", "scale", "milli"),
    [
        (1, "csat5", "0"),
        (2, "csat5", "167"),
        (3, "csat5", "333"),  # neutral: below the line of a good experience
        (4, "csat5", "500"),
        (4.5, "csat5", "750"),
        (5, "csat5", "1000"),
        (0, "nps", "0"),
        (5, "nps", "357"),  # a detractor (0 to 6) was 500: a good experience
        (6, "nps", "429"),
        (7, "nps", "500"),
        (10, "nps", "1000"),
    ],
)
def test_survey_normalised_to_thousandths(score: float, scale: str, milli: str) -> None:
    ups = touchpoint_updates(survey(score, scale))
    for op in ("incr", "wd"):
        assert (op, "survey_milli", milli) in ups
        assert (op, "survey_n", "1") in ups


def test_consent_single_channel() -> None:
    ups = touchpoint_updates(consent("sms", False, 0))
    assert [u for u in ups if u[0] == "latest"] == [("latest", "consent:sms", "0")]
    granted = touchpoint_updates(consent("email", True, 0))
    assert [u for u in granted if u[0] == "latest"] == [
        ("latest", "consent:email", "1"),
        ("latest", "subscribed:email", "1"),  # opting in again ends an unsubscribe
    ]
    assert ("latest", "subscribed:email", "1") not in touchpoint_updates(consent("sms", True, 0))


def test_an_unsubscribe_holds_until_email_consent_is_granted_again() -> None:
    assert ("latest", "subscribed:email", "0") in touchpoint_updates(email("unsubscribed"))
    assert ("latest", "subscribed:email", "1") in touchpoint_updates(consent("all", True, 0))
    assert not [u for u in touchpoint_updates(consent("all", False, 0)) if "subscribed" in u[1]]


def test_the_apply_script_keeps_the_withdrawal_fields() -> None:
    script = (Path(facts.__file__).parent / "lua" / "apply.lua").read_text()
    named = script.split("local withdrawal = {", 1)[1].split("}", 1)[0]
    assert sorted(n.strip(" '\n") for n in named.split(",")) == sorted(WITHDRAWAL_FIELDS)


def test_the_apply_script_makes_room_for_as_many_tallies_as_the_reference() -> None:
    script = (Path(facts.__file__).parent / "lua" / "apply.lua").read_text()
    assert f"local ROOMS = {lua_rooms()}\n" in script


def test_consent_all_sets_the_four_channels() -> None:
    assert set(CONSENT_CHANNELS) == {"email", "sms", "call", "web"}
    ups = touchpoint_updates(consent("all", True, 0))
    assert sorted(u for u in ups if u[0] == "latest") == sorted(
        [*(("latest", f"consent:{ch}", "1") for ch in ("email", "sms", "call", "web")),
         ("latest", "subscribed:email", "1")]
    )  # fmt: skip
    assert "consent:all" not in fields_of(ups)


# --------------------------------------------------------------------------------------
# Contacts Moments made
# --------------------------------------------------------------------------------------


def test_offers_shown_fact() -> None:
    fact = offers_shown_fact("dec-1", "c1", "web", ["o2", "o1", "o2"], at(1.0))
    ms = str(T0_MS + 1000)
    assert fact.fact_id == contact_id("dec-1", ["o1", "o2"]) != contact_id("dec-1", ["o1"])
    assert fact.fact_id.startswith("c:dec-1:") and fact.decision_id == "dec-1"
    assert fact.customer_id == "c1"
    assert fact.ts_ms == T0_MS + 1000
    assert fact.recent is None  # a contact is not a touchpoint
    assert fact.contact is True
    assert fact.updates == (
        ("incr", "shown:web", "1"),
        ("wd", "shown:web", "1"),
        ("wq", "shown:web", "1"),  # the quarter hour: the customer's own day counts it
        ("max", "last_contact:web", ms),
        ("max", "last_shown:o1", ms),
        ("wd", "offer:o1", "1"),
        ("max", "last_shown:o2", ms),
        ("wd", "offer:o2", "1"),
    )


def test_intervention_fact() -> None:
    fact = intervention_fact("int-7", "c1", "churn_risk", at(-60.0))
    ms = str(T0_MS - 60_000)
    assert fact.fact_id == "i:int-7"
    assert fact.ts_ms == T0_MS - 60_000
    assert fact.recent is None
    assert fact.contact is True
    assert fact.updates == (
        ("incr", "interventions", "1"),
        ("incr", "interventions:churn_risk", "1"),
        ("wd", "interventions", "1"),
        ("max", "last_intervention:churn_risk", ms),
    )


def test_fact_ids_of_different_kinds_do_not_collide() -> None:
    shown = offers_shown_fact("x", "c1", "web", ["o1"], T0)
    raised = intervention_fact("x", "c1", "churn", T0)
    touch = touchpoint_fact(click(0, event_id="x"))
    assert len({shown.fact_id, raised.fact_id, touch.fact_id}) == 3


# --------------------------------------------------------------------------------------
# Resolutions
# --------------------------------------------------------------------------------------


def test_resolutions() -> None:
    assert [(r.name, r.size_ms, r.keep, r.prune_every) for r in RESOLUTIONS] == [
        ("m", 5 * MINUTE_MS, 13, 1),
        ("h", 60 * MINUTE_MS, 25, 1),
        ("d", DAY_MS, 31, 1),
        ("k", 7 * DAY_MS, 53, 1),
        # contacts only: the customer's own day; pruned once a UTC day
        ("q", 15 * MINUTE_MS, 3 * 96, 96),
    ]
    # every windowed op names a resolution
    names = {f"w{r.name}" for r in RESOLUTIONS}
    assert names == WINDOW_OPS
