"""Pure mapping from what happened to a customer to the updates it makes in the store.

A :class:`Fact` is one idempotent unit of change for one customer: a touchpoint, or a
contact Moments made (offers shown, an intervention raised). Its updates are applied by
``lua/apply.lua`` in Redis and by :mod:`feature_store.reference` in plain Python, with
the same semantics. Money is kept in cents and sentiment in thousandths, so every sum
is an exact integer and any order of the same facts gives the same state. (But for facts
dated the TTL or longer ago, which reach only the withdrawals: with no profile left, a
grant that lifted a withdrawal is not remembered, so an even older withdrawal that
arrives after it holds: order matters there, on the side of not contacting.)
Contacts' facts are made in :mod:`.contact_facts`, withdrawals' in :mod:`.withdrawals`.

>>> from datetime import datetime, timezone
>>> from schemas import Purchase
>>> ts = datetime(2026, 11, 23, tzinfo=timezone.utc)
>>> fact = touchpoint_fact(Purchase(event_id="e1", customer_id="c1", ts=ts, order_id="o1",
...                                 amount=12.5, currency="EUR", categories=["books"]))
>>> ("incr", "spend_cents", "1250") in fact.updates, ("wk", "spend_cents", "1250") in fact.updates
(True, True)
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from feature_store.money import ONE_CURRENCY, Money, to_cents
from schemas import (
    Call,
    Consent,
    Email,
    Purchase,
    SocialMention,
    Survey,
    TouchpointEvent,
    WebClick,
)

# incr/max/min/latest act on the lifetime profile hash; tally is an incr that makes a new
# field only while its prefix's room has space (rooms.py: a count of an open-ended name,
# a category or a currency with no rate; free text from a producer must not grow a
# customer's profile, read whole at every decision, without bound); w<res> adds to the
# bucket of the fact's ts at that resolution in the windows hash.
Op = Literal["incr", "tally", "max", "min", "latest", "wm", "wh", "wd", "wk", "wq"]
Update = tuple[Op, str, str]
CONSENT_CHANNELS = ("email", "sms", "call", "web")
# profile fields that say "0" while the customer has withdrawn (consent, or the email
# subscription): they are kept apart, without expiry (lua/apply.lua names them too)
WITHDRAWAL_FIELDS = (*(f"consent:{c}" for c in CONSENT_CHANNELS), "subscribed:email")
# A grant ("1") in one of them ranks this long before its own time against the field's
# other facts: it overrides a withdrawal only when dated more than 15 minutes after it, so
# that a grant from a clock running fast (up to the 15 minutes of skew a worker accepts
# by default) cannot hide a withdrawal the customer made after it. Any order of the same
# facts still gives the same state (lua/apply.lua has the same number).
GRANT_LEAD_MS = 15 * 60_000
# how many categories one window bucket counts at most (lua/apply.lua has it too), and
# the bucket's field counting them: free text from a producer grew the windows hash, read
# whole at every decision, without bound (100,000 touchpoints a year naming 600
# categories: 6,479 fields and 4.6 ms to build a decision's features; 1,649 and 1.7 ms
# with this room)
BUCKET_CATEGORY_ROOM = 32
BUCKET_CATEGORIES = "cats"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MILLISECOND = timedelta(milliseconds=1)
MINUTE_MS = 60_000
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Resolution:
    name: str  # the letter after "w" in an op
    size_ms: int
    keep: int  # buckets kept, the newest one included
    # older buckets are pruned when the newest moves into another run of this many (1:
    # at each move); between prunes up to this many more are kept
    prune_every: int = 1


TOUCHPOINT_RESOLUTIONS = (
    Resolution("m", 5 * MINUTE_MS, 13),  # 1 h window
    Resolution("h", 60 * MINUTE_MS, 25),  # 24 h window
    Resolution("d", DAY_MS, 31),  # 7 d and 30 d windows
    Resolution("k", 7 * DAY_MS, 53),  # 365 d window
)
# Contacts (offers shown, per channel) are counted by the quarter hour too, for the three
# days ending with the newest one: the fatigue caps count the customer's own day, from a
# local midnight a quarter hour divides (feature_store/contact_days.py). Pruned once a UTC
# day, not at each new quarter: most contacts are the first of their quarter, and a prune
# reads every field of the hash.
QUARTER = Resolution("q", 15 * MINUTE_MS, 3 * 96, prune_every=96)
RESOLUTIONS = (*TOUCHPOINT_RESOLUTIONS, QUARTER)  # every resolution a fact may write to
# How many times each offer was shown in a day (contacts' fields d<day>|offer:<offer>) is
# kept for the 15 UTC days ending with the newest contact's, not the 31 of the other
# daily buckets: only an offer's weekly cap reads it (a week counts eight UTC days at
# most: feature_store/contact_days.py), for a contact dated up to seven days before the
# customer's newest (a late one) too, and with offers rotating these fields were most of
# a heavy customer's contacts hash, read whole at every decision (as apply.lua, which
# names the figure too)
OFFER_KEPT_DAYS = 15
# When each offer was last shown (profile fields ``last_shown:<offer>``) is kept for the
# days ending with the newest day of the customer's contacts (as apply.lua, which names
# the figure too): longer than the longest cool-down an offer may have (366 days), so
# that dropping one holds back nothing, with offers rotating in and out of the catalogue.
SHOWN_KEPT_DAYS = 367
LAST_SHOWN = "last_shown:"
# When the customer last accepted each offer (profile fields ``accepted:<offer>``, the
# newest ``accepted`` outcome's time in ms): written by the learner, which joins each
# outcome to its decision (feature_store.acceptances), never by a fact
ACCEPTED = "accepted"

CHANNEL_OF_TYPE = {
    "web_click": "web",
    "call": "call",
    "email": "email",
    "social_mention": "social",
    "purchase": "shop",
    "survey": "survey",
}


@dataclass(frozen=True, slots=True)
class ContactCeilings:
    """The caps a contact must stay within, checked where it is applied and atomically
    with it, so that processes deciding for one customer at once cannot take a cap past
    its limit between them. A contact over one of them is not applied (nothing is
    written).

    ``counts``: (metrics, days, cap): the customer's contact counts of ``metrics`` over
    the ``days`` days of ``timezone`` ending with the contact's (1: that day alone, from
    its local midnight; see :mod:`feature_store.contact_days`) must add up to less than
    ``cap`` before it. ``cool_downs``: (profile field, latest): the time in the field
    (ms; the last time an offer was shown) must be ``latest`` or earlier, or not be
    there. ``timezone``: an IANA name, whose days the counts count (the customer's, else
    the catalogue's). ``withdrawn``: withdrawal fields (:data:`WITHDRAWAL_FIELDS`) that
    must not read ``"0"`` (in the profile, else in the opt-outs kept beside it): a
    withdrawal applied since the decision's read refuses its contact, decided again."""

    counts: tuple[tuple[tuple[str, ...], int, int], ...] = ()
    cool_downs: tuple[tuple[str, int], ...] = ()
    timezone: str = "UTC"
    withdrawn: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.counts or self.cool_downs or self.withdrawn)


@dataclass(frozen=True, slots=True)
class Fact:
    # the idempotency key: t:<event_id>, i:<intervention_id>, or a contact's (contact_id)
    fact_id: str
    customer_id: str
    ts_ms: int
    updates: tuple[Update, ...]
    recent: str | None = None  # the entry for the recent-touchpoints list
    contact: bool = False  # a contact Moments made: its buckets are kept apart from touchpoints
    ceilings: ContactCeilings | None = None  # a contact's caps (None: applied whatever the counts)
    decision_id: str | None = None  # the decision whose offers a contact showed
    # kept only beside the tombstone of a customer erased (a rebuild's withdrawals): of
    # one not erased (their block ran out meanwhile), nothing is written
    erased_only: bool = False
    # a touchpoint that keeps, beside its id, its customer's newest recent touchpoint
    # before it (apply.lua, for lua/before.lua): the first of a burst (see mark_bursts)
    keep_before: bool = False


def ts_ms(ts: datetime) -> int:
    """Whole milliseconds since the epoch (exact, no float rounding)."""
    return (ts - EPOCH) // MILLISECOND


def _milli(x: float) -> str:
    return str(round(x * 1000))


def _activity(kind: str, channel: str | None) -> list[Update]:
    ups: list[Update] = [
        ("incr", "n", "1"),
        ("incr", f"n:{kind}", "1"),
        ("wm", f"n:{kind}", "1"),
        ("wh", f"n:{kind}", "1"),
        ("wd", f"n:{kind}", "1"),
    ]
    if channel is not None:
        ups += [
            ("incr", f"ch:{channel}", "1"),
            ("wm", f"ch:{channel}", "1"),
            ("wh", f"ch:{channel}", "1"),
            ("wd", f"ch:{channel}", "1"),
        ]
    return ups


def _sentiment(source: str, sentiment: float) -> list[Update]:
    m = _milli(sentiment)
    return [
        ("incr", f"{source}_sent_milli", m),
        ("incr", f"{source}_sent_n", "1"),
        ("wd", f"{source}_sent_milli", m),
        ("wd", f"{source}_sent_n", "1"),
    ]


def _category(category: str) -> list[Update]:
    return [("tally", f"cat:{category}", "1"), ("wd", f"cat:{category}", "1")]


def by_the_customer(event: TouchpointEvent) -> bool:
    """Whether the customer did something: an email sent to them, delivered or bounced is
    the business's doing, and counts as no activity of theirs (it would keep a customer
    who left looking active, and make email their preferred channel).

    >>> by_the_customer(Email(event_id="e", customer_id="c", ts=EPOCH, action="delivered"))
    False
    """
    return not (isinstance(event, Email) and event.action in BUSINESS_EMAIL_ACTIONS)


BUSINESS_EMAIL_ACTIONS = frozenset({"sent", "delivered", "bounced"})


def survey_experience(score: float, scale: str) -> float:
    """A survey answer as experience in 0..1, where 0.5 (the segments' default line
    between good and bad) is the first satisfied answer: 4 of 5 in CSAT, 7 of 10 in NPS
    (detractors, 0 to 6, and a neutral 3 of 5 fall below it). Linear on either side.

    >>> [round(survey_experience(s, "nps"), 3) for s in (0, 6, 7, 8, 10)]
    [0.0, 0.429, 0.5, 0.667, 1.0]
    >>> [round(survey_experience(s, "csat5"), 3) for s in (1, 3, 4, 5)]
    [0.0, 0.333, 0.5, 1.0]
    """
    low, satisfied, high = (1.0, 4.0, 5.0) if scale == "csat5" else (0.0, 7.0, 10.0)
    if score <= satisfied:
        return 0.5 * (score - low) / (satisfied - low)
    return 0.5 + 0.5 * (score - satisfied) / (high - satisfied)


def touchpoint_updates(event: TouchpointEvent, money: Money = ONE_CURRENCY) -> list[Update]:
    """The updates one touchpoint makes (purchases counted in ``money``'s currency)."""
    ms = str(ts_ms(event.ts))
    ups: list[Update] = []
    if by_the_customer(event):
        ups += _activity(event.kind, CHANNEL_OF_TYPE.get(event.kind))
        ups += [("min", "first_seen", ms), ("max", "last_seen", ms)]
    if event.timezone is not None:  # the customer's own, as the newest event tells it
        ups.append(("latest", "timezone", event.timezone))
    match event:
        case WebClick(category=category):
            if category:
                ups += _category(category)
        case Call(status="started", direction=direction, reason=reason):
            ups += [("incr", f"call:{direction}", "1"), ("incr", f"call_reason:{reason}", "1")]
            if reason == "complaint":
                ups.append(("wd", "complaints", "1"))
        case Call(status="ended", sentiment=sentiment):
            if sentiment is not None:
                ups += _sentiment("call", sentiment)
        case Email(action=action):
            ups.append(("incr", f"email:{action}", "1"))
            if action == "unsubscribed":  # until they grant email consent again
                ups.append(("latest", "subscribed:email", "0"))
        case SocialMention(sentiment=sentiment, reach=reach):
            ups += _sentiment("social", sentiment)
            if sentiment < 0:
                reach_s = str(reach or 0)
                ups += [
                    ("incr", "negative_mentions", "1"),
                    ("incr", "negative_reach", reach_s),
                    ("wd", "negative_mentions", "1"),
                    ("wd", "negative_reach", reach_s),
                ]
        case Purchase(amount=amount, currency=currency, categories=categories):
            ups += [
                ("incr", "purchases", "1"),
                ("max", "last_purchase", ms),
                ("wd", "purchases", "1"),
                ("wk", "purchases", "1"),
            ]
            converted = money.cents(amount, currency)
            if converted is None:  # no rate to the base currency: kept apart, as it is, for
                # the first CURRENCY_ROOM currencies (rooms.py); counted as unconverted all
                ups += [("tally", f"spend_unconverted:{currency}", str(to_cents(amount))),
                        ("incr", "purchases_unconverted", "1")]  # fmt: skip
            else:
                cents = str(converted)
                ups += [("incr", "spend_cents", cents), ("wd", "spend_cents", cents),
                        ("wk", "spend_cents", cents)]  # fmt: skip
            for category in sorted(set(categories or ())):
                if category:  # as a click's: an empty name is no taste
                    ups += _category(category)
        case Survey(score=score, scale=scale):
            normalised = _milli(survey_experience(score, scale))
            ups += [
                ("incr", "survey_milli", normalised),
                ("incr", "survey_n", "1"),
                ("wd", "survey_milli", normalised),
                ("wd", "survey_n", "1"),
            ]
        case Consent(channel=channel, granted=granted):
            for name in CONSENT_CHANNELS if channel == "all" else (channel,):
                ups.append(("latest", f"consent:{name}", "1" if granted else "0"))
            if granted and channel in ("all", "email"):  # opting in again ends an unsubscribe
                ups.append(("latest", "subscribed:email", "1"))
    return ups


def recent_entry(event: TouchpointEvent) -> str:
    """How the event appears in the recent-touchpoints list (no customer id)."""
    return f"{ts_ms(event.ts)}|{event.kind}|{event.event_id}"


def before_mark(fact_id: str, entry: str) -> str:
    """The mark apply.lua keeps beside a touchpoint's id in the seen ids: ``entry``, the
    customer's newest recent entry before it ('' for none), which lua/before.lua reads
    back for a batch read again after it was applied. Short, so that the seen ids stay
    a listpack: the fact id by 8 hex digits of its SHA-1, the entry without its event id
    ('?' for one in another form).

    >>> before_mark("t:c0", "1795000000000|purchase|p")
    'b:5d5a6181|1795000000000|purchase'
    """
    found = re.match(r"-?[0-9]+\|[^|]*", entry)
    told = "" if not entry else found.group() if found else "?"
    return f"b:{hashlib.sha1(fact_id.encode()).hexdigest()[:8]}|{told}"


def mark_bursts(facts: Sequence[Fact], recent_len: int) -> list[Fact]:
    """``facts`` (a batch, in order), with the customer's first touchpoint marked to keep
    the newest recent touchpoint before it (:attr:`Fact.keep_before`) for each customer
    with at least ``recent_len`` touchpoints in the batch: only these can push that one
    out of the recent list, and only the first one's is read back (lua/before.lua). The
    others keep nothing beyond their id, so an ordinary customer's seen ids stay as they
    were (a mark each doubled them, and a set past 128 leaves Redis's listpack).

    >>> def click(n: int, customer: str) -> Fact:
    ...     return Fact(f"t:{customer}{n}", customer, n, (), recent=f"{n}|web_click|{n}")
    >>> batch = [click(n, "a") for n in range(3)] + [click(n, "b") for n in range(2)]
    >>> [f.fact_id for f in mark_bursts(batch, recent_len=3) if f.keep_before]
    ['t:a0']
    >>> [f.fact_id for f in mark_bursts(batch, recent_len=4) if f.keep_before]
    []
    """
    if recent_len <= 0:
        return list(facts)
    ids: dict[str, set[str]] = {}  # customer -> their touchpoints' ids in the batch
    first: dict[str, int] = {}  # customer -> where their first touchpoint is
    for at, fact in enumerate(facts):
        if fact.recent:
            ids.setdefault(fact.customer_id, set()).add(fact.fact_id)
            first.setdefault(fact.customer_id, at)
    marked = {at for customer, at in first.items() if len(ids[customer]) >= recent_len}
    return [replace(f, keep_before=True) if at in marked else f for at, f in enumerate(facts)]


def touchpoint_fact(event: TouchpointEvent, money: Money = ONE_CURRENCY) -> Fact:
    return Fact(
        fact_id=f"t:{event.event_id}",
        customer_id=event.customer_id,
        ts_ms=ts_ms(event.ts),
        updates=tuple(touchpoint_updates(event, money)),
        recent=recent_entry(event) if by_the_customer(event) else None,
    )


def risk_fact(
    event_id: str, customer_id: str, ts: datetime, snapshot: str | None, band: str | None
) -> Fact:
    """The churn-risk bookkeeping a touchpoint leaves: a new pending feature snapshot
    (JSON, waiting for its delayed label) and/or the band the risk is in now."""
    ups: list[Update] = []
    if snapshot is not None:
        ups.append(("latest", "risk_snapshot", snapshot))
    if band is not None:
        ups.append(("latest", "risk_band", band))
    return Fact(f"r:{event_id}", customer_id, ts_ms(ts), tuple(ups), contact=True)
