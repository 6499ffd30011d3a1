"""Hypothesis strategies that build Moments' records: touchpoint and outcome JSON as
producers write it (DESIGN.md section 4), decisions and erasures as Moments writes them,
customer ids on either side of the contract's rules, and customer histories of facts
applied to the pure reference store (:class:`feature_store.reference.CustomerState`).

The customer-id rule is restated here from the Unicode database (:func:`breaks_id_rules`),
not from :mod:`schemas.customer_ids`, so that tests can hold the code to it.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import available_timezones

from hypothesis import strategies as st

from feature_store.contact_facts import intervention_fact, offers_shown_fact
from feature_store.facts import DAY_MS, risk_fact, touchpoint_fact
from feature_store.money import ONE_CURRENCY, Money
from feature_store.reference import CustomerState
from schemas import (
    Call,
    Consent,
    CustomerErasure,
    Email,
    Intervention,
    InterventionContext,
    NextBestOffer,
    OfferScore,
    Purchase,
    SocialMention,
    Survey,
    TouchpointEvent,
    WebClick,
)
from tests.unit.factories import HOUR_MS, MINUTE_MS, T0_MS

# --------------------------------------------------------------------------------------
# Customer ids
# --------------------------------------------------------------------------------------

# bidirectional classes of the embeddings, overrides and isolates, and the marks (whose
# classes are those of letters: L, R, AL)
_BIDI_CONTROL_CLASSES = frozenset({"LRE", "RLE", "PDF", "LRO", "RLO", "LRI", "RLI", "FSI", "PDI"})
_BIDI_MARKS = frozenset({"\u200e", "\u200f", "\u061c"})


def _is_control(char: str) -> bool:
    """C0/C1 controls and DEL (Cc), the line and paragraph separators, bidi controls."""
    return (
        unicodedata.category(char) in ("Cc", "Zl", "Zp")
        or unicodedata.bidirectional(char) in _BIDI_CONTROL_CLASSES
        or char in _BIDI_MARKS
    )


def breaks_id_rules(customer_id: str) -> bool:
    """Whether the contract refuses ``customer_id`` (its length aside): only spaces, a dot
    segment (``.`` or ``..``), or any control or bidirectional-text control character."""
    only_spaces = all(unicodedata.category(c) == "Zs" for c in customer_id)
    return only_spaces or customer_id in (".", "..") or any(map(_is_control, customer_id))


# characters at the edges of the rule: refused ones, and look-alikes that are fit
# (no-break and ideographic spaces, zero-width space and joiner, a combining accent)
REFUSED_CHARS = "\x00\t\n\r\x1b\x7f\x85\x9f\u2028\u2029\u200e\u200f\u061c\u202a\u202e\u2066\u2069"
EDGE_CHARS = " \u00a0\u3000\u2003.\u200b\u200d\u0301/%{}:🎉"
_fit_char = st.characters(
    exclude_categories=("Cs", "Cc", "Zl", "Zp"), exclude_characters=REFUSED_CHARS
) | st.sampled_from(list(EDGE_CHARS))
_any_char = st.characters(exclude_categories=("Cs",)) | st.sampled_from(
    list(REFUSED_CHARS + EDGE_CHARS)
)
# (joined from lists: as the alphabet of ``st.text``, the special characters would hardly
# ever be drawn)
_fit_texts = st.lists(_fit_char, min_size=1, max_size=256).map("".join)

# ids the contract takes: 1 to 256 characters of anything but the refused
customer_ids = _fit_texts.filter(lambda s: not breaks_id_rules(s))
# any id of 1 to 40 characters: fit ones, some only of spaces or dots, some with refused
# characters anywhere, and some with one at either end (which trimming would hide)
any_customer_ids = st.one_of(
    _fit_texts.map(lambda s: s[:40]),
    st.lists(_any_char, min_size=1, max_size=40).map("".join),
    st.builds(
        lambda s, char, front: char + s[:39] if front else s[:39] + char,
        _fit_texts,
        st.sampled_from(list(REFUSED_CHARS)),
        st.booleans(),
    ),
)


# --------------------------------------------------------------------------------------
# Timestamps
# --------------------------------------------------------------------------------------

instants = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
utc_offsets = st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
# an instant as a producer in some UTC offset writes it
aware_datetimes = st.builds(lambda d, tz: d.astimezone(tz), instants, utc_offsets)


@st.composite
def rfc3339_timestamps(draw: st.DrawFn) -> str:
    """RFC 3339 with an offset (``Z`` for UTC), to the second, millisecond or microsecond."""
    when = draw(aware_datetimes)
    spec = draw(st.sampled_from(["seconds", "milliseconds", "microseconds"]))
    text = when.isoformat(timespec=spec)
    return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text


# --------------------------------------------------------------------------------------
# Touchpoint and outcome JSON, as DESIGN.md section 4 writes it
# --------------------------------------------------------------------------------------

TIMEZONE_NAMES = sorted(available_timezones() - {"localtime", "posixrules"})
# what producers may send as a timezone that is not an IANA name (taken as none)
OTHER_TIMEZONES = ["UTC+1", "Mars/Olympus", "localtime", "", 60, None, ["Europe/Paris"]]

ids = st.text(min_size=1, max_size=256)
texts = st.text(max_size=40)
labels = st.text(max_size=40) | st.text(min_size=250, max_size=256)  # at most 256
sentiments = st.floats(-1.0, 1.0)


_ABSENT = object()  # an optional field left out


def _touchpoint(
    kind: str, fields: dict[str, Any], optional: dict[str, Any]
) -> st.SearchStrategy[dict[str, Any]]:
    """A touchpoint of type ``kind``: the common fields, ``fields``, and each of the
    ``optional`` ones (and ``timezone``) left out, null, or a value, as often each."""
    common = {
        "type": st.just(kind),
        "event_id": ids,
        "customer_id": customer_ids,
        "ts": rfc3339_timestamps(),
    }
    timezones = st.sampled_from(TIMEZONE_NAMES) | st.sampled_from(OTHER_TIMEZONES)
    maybe = {
        name: st.sampled_from([_ABSENT, None]) | value
        for name, value in {**optional, "timezone": timezones}.items()
    }
    return st.fixed_dictionaries({**common, **fields, **maybe}).map(
        lambda document: {k: v for k, v in document.items() if v is not _ABSENT}
    )


TOUCHPOINT_DOCUMENTS = {
    "web_click": _touchpoint(
        "web_click",
        {"page": texts},
        {
            "category": labels,
            "product_id": texts,
            "session_id": texts,
        },
    ),
    "call": _touchpoint(
        "call",
        {
            "status": st.sampled_from(["started", "ended"]),
            "direction": st.sampled_from(["inbound", "outbound"]),
            "reason": st.sampled_from(
                ["sales", "support", "billing", "complaint", "cancel", "other"]
            ),
        },
        {
            "duration_s": st.integers(0, 10**6) | st.floats(0, 1e9),
            "sentiment": sentiments,
            "queue": labels,
            "agent_id": labels,
        },
    ),
    "email": _touchpoint(
        "email",
        {
            "action": st.sampled_from(
                ["sent", "delivered", "opened", "clicked", "bounced", "unsubscribed", "replied"]
            )
        },
        {"campaign_id": texts},
    ),
    "social_mention": _touchpoint(
        "social_mention",
        {"platform": texts, "sentiment": sentiments},
        # a whole number, which JSON may write as 1200 or 1200.0
        {"reach": st.integers(0, 10**10).flatmap(lambda n: st.sampled_from([n, float(n)]))},
    ),
    "purchase": _touchpoint(
        "purchase",
        {
            "order_id": ids,
            "amount": st.floats(0, 1e12) | st.integers(0, 10**12),
            "currency": st.from_regex(r"\A[A-Za-z]{3}\Z"),
        },
        {"categories": st.lists(labels, max_size=5)},
    ),
    "survey": st.one_of(
        _touchpoint(
            "survey", {"scale": st.just("csat5"), "score": st.integers(1, 5) | st.floats(1, 5)}, {}
        ),
        _touchpoint(
            "survey", {"scale": st.just("nps"), "score": st.integers(0, 10) | st.floats(0, 10)}, {}
        ),
    ),
    "consent": _touchpoint(
        "consent",
        {
            "channel": st.sampled_from(["email", "sms", "call", "web", "all"]),
            "granted": st.booleans(),
        },
        {},
    ),
}
touchpoint_documents = st.one_of(*TOUCHPOINT_DOCUMENTS.values())

outcome_documents = st.fixed_dictionaries(
    {
        "decision_id": ids,
        "customer_id": customer_ids,
        "offer_id": ids,
        "outcome": st.sampled_from(["shown", "clicked", "accepted", "dismissed", "ignored"]),
        "ts": rfc3339_timestamps(),
    }
)

# --------------------------------------------------------------------------------------
# What Moments writes: decisions and erasures
# --------------------------------------------------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False)

next_best_offers = st.builds(
    NextBestOffer,
    decision_id=texts,
    customer_id=customer_ids,
    ts=aware_datetimes,
    channel=st.sampled_from(["web", "email", "sms", "call"]),
    trigger_event_id=st.none() | texts,
    offers=st.lists(
        st.builds(OfferScore, offer_id=texts, score=finite, propensity=finite), max_size=4
    ),
    control=st.booleans(),
    model_version=texts,
    reasons=st.lists(texts, max_size=3),
    trigger_ts=st.none() | aware_datetimes,
    fallback=st.booleans(),
    context=st.none() | st.lists(finite, max_size=6),
    catalogue_version=st.none() | texts,
    segment=st.none() | texts,
)

interventions = st.builds(
    Intervention,
    intervention_id=texts,
    customer_id=customer_ids,
    ts=aware_datetimes,
    kind=st.sampled_from(["retention_call", "service_recovery", "win_back", "save_desk"]),
    priority=st.sampled_from([1, 2, 3]),
    trigger_event_id=st.none() | texts,
    reasons=st.lists(texts, max_size=3),
    suggested_action=texts,
    queue=st.none() | texts,
    agent_id=st.none() | texts,
    context=st.builds(
        InterventionContext,
        segment=st.none() | texts,
        risk=st.none() | finite,
        value=st.none() | finite,
        recent_touchpoints=st.lists(texts, max_size=3),
        timezone=st.none() | st.sampled_from(TIMEZONE_NAMES),
        currency=st.none() | st.from_regex(r"\A[A-Z]{3}\Z"),
    ),
    trigger_ts=st.none() | aware_datetimes,
    control=st.booleans(),
)

erasures = st.builds(
    CustomerErasure,
    customer_id=ids,
    subject=st.from_regex(r"\A[0-9a-f]{24}\Z"),
    ts=aware_datetimes,
    keys_removed=st.integers(0, 2**63 - 1),
)

# --------------------------------------------------------------------------------------
# Customer histories in the reference store
# --------------------------------------------------------------------------------------

CATEGORIES = ["books", "home", "travel", "a:b", "x|y", "ñ"]


def _kind(cls: type[TouchpointEvent], **fields: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries(fields).map(lambda kw: (cls, kw))


_categories = st.sampled_from(CATEGORIES)
_survey_answers = st.sampled_from([("csat5", 1.0, 5.0), ("nps", 0.0, 10.0)]).flatmap(
    lambda s: st.fixed_dictionaries({"scale": st.just(s[0]), "score": st.floats(s[1], s[2])})
)
# a touchpoint's type and its own fields (all but the common ones)
_touchpoint_fields = st.one_of(
    _kind(WebClick, page=st.just("/"), category=st.none() | _categories),
    _kind(
        Call,
        status=st.sampled_from(["started", "ended"]),
        direction=st.sampled_from(["inbound", "outbound"]),
        reason=st.sampled_from(["sales", "support", "complaint", "cancel"]),
        sentiment=st.none() | sentiments,
    ),
    _kind(
        Email,
        action=st.sampled_from(
            ["sent", "delivered", "opened", "clicked", "bounced", "unsubscribed", "replied"]
        ),
    ),
    _kind(
        SocialMention,
        platform=st.just("x"),
        sentiment=sentiments,
        reach=st.none() | st.integers(0, 10**10),
    ),
    _kind(
        Purchase,
        amount=st.floats(0, 1e6) | st.sampled_from([0.005, 0.125, 1.005]),
        currency=st.sampled_from(["EUR", "USD", "JPY"]),
        categories=st.lists(_categories, max_size=3),
    ),
    _survey_answers.map(lambda kw: (Survey, kw)),
    _kind(
        Consent,
        channel=st.sampled_from(["email", "sms", "call", "web", "all"]),
        granted=st.booleans(),
    ),
)
# within a couple of hours, or up to 40 days late
_lateness_ms = st.integers(-2 * HOUR_MS, 14 * MINUTE_MS) | st.integers(-40 * DAY_MS, 0)
_zones = st.none() | st.sampled_from(["Europe/Paris", "Asia/Tokyo"])


@st.composite
def touchpoint_events(draw: st.DrawFn, event_id: str, clock_ms: int) -> TouchpointEvent:
    """One touchpoint of customer ``c1`` as a worker at ``clock_ms`` receives it: on
    time, up to 40 days late, or up to 14 minutes ahead (a producer's clock running
    fast)."""
    cls, fields = draw(_touchpoint_fields)
    if cls is Purchase:
        fields = {**fields, "order_id": f"o-{event_id}"}
    ts = datetime.fromtimestamp((clock_ms + draw(_lateness_ms)) / 1000, UTC)
    event: TouchpointEvent = cls(
        event_id=event_id, customer_id="c1", ts=ts, timezone=draw(_zones), **fields
    )
    return event


@dataclass
class History:
    """A customer's reference state after a sequence of facts, and when it is read."""

    state: CustomerState
    applied: list[TouchpointEvent]  # the touchpoints it took, in order (no duplicate)
    read_ms: int
    money: Money


_moneys = st.sampled_from([ONE_CURRENCY, Money.parse("EUR", "USD=0.92")])
_steps_ms = st.integers(0, 20 * MINUTE_MS) | st.integers(0, 3 * DAY_MS)
_what = st.integers(0, 10)
_read_after_ms = st.integers(0, 2 * HOUR_MS) | st.integers(0, 40 * DAY_MS)
_contact_age_ms = st.integers(0, DAY_MS)
_channels = st.sampled_from(["web", "email", "sms", "call"])
_offers = st.lists(st.sampled_from(["o1", "o2"]), max_size=2)
_intervention = st.tuples(
    st.sampled_from(["save_desk", "win_back"]), st.booleans(), st.none() | st.integers(1, 3)
)
_risk = st.tuples(st.none() | st.just('{"x": 1}'), st.none() | st.just("high"))


@st.composite
def customer_histories(draw: st.DrawFn) -> History:
    """1 to 16 facts of one customer, applied by a worker whose clock moves on by minutes
    or by up to 3 days between them: touchpoints of every kind (late and a little early,
    some delivered twice), offers shown, interventions (held out or not, with priorities)
    and risk bookkeeping; read minutes or up to 40 days after the last one, once what
    expired by then is gone."""
    money = draw(_moneys)
    clock = T0_MS
    state = CustomerState()
    applied: list[TouchpointEvent] = []
    for n in range(draw(st.integers(1, 16))):
        clock += draw(_steps_ms)
        what = draw(_what)
        if what < 7 or (what == 10 and applied):
            if what < 7:
                event = draw(touchpoint_events(f"e{n}", clock))
            else:  # delivered again: a duplicate, unless its id was forgotten since
                event = applied[draw(st.integers(0, len(applied) - 1))]
            if state.apply(touchpoint_fact(event, money), clock) == 1:
                applied.append(event)
            continue
        ts = datetime.fromtimestamp((clock - draw(_contact_age_ms)) / 1000, UTC)
        if what == 7:
            fact = offers_shown_fact(f"d{n}", "c1", draw(_channels), draw(_offers), ts)
        elif what == 8:
            kind, held_out, priority = draw(_intervention)
            fact = intervention_fact(f"i{n}", "c1", kind, ts, held_out, priority)
        else:  # what is 9, or 10 before any touchpoint
            snapshot, band = draw(_risk)
            fact = risk_fact(f"r{n}", "c1", ts, snapshot, band)
        state.apply(fact, clock)
    read_ms = clock + draw(_read_after_ms)
    state.expire_due(read_ms)
    return History(state, applied, read_ms, money)
