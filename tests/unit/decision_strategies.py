"""Hypothesis strategies that build what the decision logic of ``agents/`` reads: offer
catalogues with their contact rules (caps, quiet hours, opt-in), customers' features
and contact histories, instants in any UTC offset and around DST changes, and offer
models trained on real decision contexts. Shared by the ``test_*_properties.py`` files
of the contact policy, budgets, fallbacks, bandit and interventions."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from hypothesis import strategies as st

from agents.bandit import LinUCBOffers
from agents.catalogue_holder import CatalogueHolder
from agents.contact_policy import ContactPolicy
from agents.context import DIMENSION, context_vector
from agents.control_group import ControlGroup
from agents.learned_policy import LearnedOfferPolicy, ModelHolder
from agents.offer_budget import BudgetLedger
from agents.offer_policy import OfferPolicy
from agents.offer_rules import RuleBasedOfferPolicy
from feature_store import ContactHistory, CustomerFeatures, RecentTouchpoint
from schemas import ContactRules, Offer, OfferCatalogue
from schemas.catalogue import OFFER_CHANNELS
from tests.unit.factories import T0

CHANNELS = OFFER_CHANNELS  # web, email, sms, call
SEGMENTS = ("model", "growth", "at_risk", "dangling", "new")
CATEGORIES = ("books", "home", "travel", "toys")
OFFER_IDS = ("a", "b", "c", "d", "e", "f")
ALERT_KINDS = (
    "save_desk",
    "retention_call",
    "vip_attention",
    "service_recovery",
    "win_back",
    "do_not_call",
)
NOBODY = ControlGroup("properties", 0.0)  # a control group no customer is in
# any channel, the web (where caps are high and fallbacks show offers) half the time
channels = st.sampled_from(CHANNELS) | st.just("web")

# zones with summer time (both hemispheres, a 30-minute one), odd offsets (+5:45,
# +12:45, -9:30, +14), a zone whose DST is two hours (Troll) and fixed Etc zones
ZONES = (
    "UTC",
    "Europe/London",
    "Europe/Paris",
    "America/New_York",
    "America/St_Johns",
    "America/Santiago",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Asia/Kathmandu",
    "Asia/Kolkata",
    "Pacific/Marquesas",
    "Pacific/Kiritimati",
    "Antarctica/Troll",
    "Africa/Casablanca",
    "Etc/GMT+12",
    "Etc/GMT-14",
)
DST_ZONES = (
    "Europe/London",
    "America/New_York",
    "America/Santiago",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Antarctica/Troll",
)
# what a customer's timezone may read: unknown, a zone, or a name that is no IANA zone
# (the catalogue's zone then counts)
customer_zones = st.none() | st.sampled_from(ZONES) | st.sampled_from(["UTC+1", "Mars/Olympus"])

utc_instants = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
)


@functools.cache
def dst_changes(zone: str, year: int = 2026) -> tuple[datetime, ...]:
    """The instants (UTC) at which ``zone``'s offset changed in ``year``."""
    tz, changes = ZoneInfo(zone), []
    day = datetime(year, 1, 1, tzinfo=UTC)
    while day.year == year:
        nxt = day + timedelta(days=1)
        if day.astimezone(tz).utcoffset() != nxt.astimezone(tz).utcoffset():
            lo, hi = day, nxt  # bisect to the minute
            while hi - lo > timedelta(minutes=1):
                mid = lo + (hi - lo) / 2
                same = mid.astimezone(tz).utcoffset() == lo.astimezone(tz).utcoffset()
                lo, hi = (mid, hi) if same else (lo, mid)
            changes.append(hi.replace(second=0, microsecond=0))
        day = nxt
    return tuple(changes)


_zones, _offsets = st.sampled_from(ZONES), st.integers(-14 * 60 + 1, 14 * 60 - 1)
_given_as = st.sampled_from(["utc", "zone", "offset"])


@st.composite
def instants(draw: st.DrawFn) -> datetime:
    """An instant in 2025-2028, given in UTC, in a zone, or with a fixed UTC offset: the
    decision logic must read the same moment whatever offset it comes with."""
    t, how = draw(utc_instants), draw(_given_as)
    if how == "zone":
        return t.astimezone(ZoneInfo(draw(_zones)))
    if how == "offset":
        return t.astimezone(timezone(timedelta(minutes=draw(_offsets))))
    return t


@st.composite
def around_dst_change(draw: st.DrawFn) -> tuple[str, datetime]:
    """A zone with summer time and an instant within three hours of one of its changes."""
    zone = draw(st.sampled_from(DST_ZONES))
    change = draw(st.sampled_from(dst_changes(zone)))
    return zone, change + timedelta(minutes=draw(st.integers(-180, 180)))


def span(start: int, end: int) -> str:
    """Minutes of the day as a quiet-hours span, ``"HH:MM-HH:MM"``."""
    return f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"


quiet_spans = st.tuples(st.integers(0, 1439), st.integers(1, 1439)).map(
    lambda t: span(t[0], (t[0] + t[1]) % 1440)  # never empty; may cross midnight
)
# Strategies are built once, here: building them inside a composite on every draw
# costs more than drawing from them. Every rule shows up often, but most draws leave
# something to offer, so that the properties of what is offered are put to the test.
_channel_caps = st.dictionaries(
    st.sampled_from(CHANNELS), st.sampled_from([0, 1, 2, 3, 6]), max_size=2
)
_weekly_caps = st.dictionaries(
    st.sampled_from(CHANNELS), st.sampled_from([0, 2, 3, 5, 10]), max_size=2
)
_quiet_hours = st.dictionaries(st.sampled_from(CHANNELS), quiet_spans, max_size=2)
_opt_in = st.lists(st.sampled_from(CHANNELS), max_size=1)
_outbound_day = st.none() | st.sampled_from([0, 1, 2, 5])
_outbound_week = st.none() | st.sampled_from([0, 2, 4, 10])


@st.composite
def contact_rules(draw: st.DrawFn) -> ContactRules:
    """Any valid contact rules: caps (0 closes a channel), outbound caps, quiet hours,
    opt-in channels."""
    weekly = draw(_weekly_caps)
    bound = ContactRules(weekly_caps=weekly)
    daily = {
        channel: day
        for channel, day in draw(_channel_caps).items()
        if not day > bound.weekly_cap(channel) > 0
    }  # else a slip the catalogue refuses
    out_day, out_week = draw(_outbound_day), draw(_outbound_week)
    if out_day is not None and out_week is not None and out_day > out_week > 0:
        out_day = out_week
    return ContactRules(
        daily_caps=daily,
        weekly_caps=weekly,
        quiet_hours=draw(_quiet_hours),
        timezone=draw(_zones),
        outbound_daily_cap=out_day,
        outbound_weekly_cap=out_week,
        consent_required=draw(_opt_in),
    )


_offer_fields = st.fixed_dictionaries(
    {
        "channels": st.just(list(CHANNELS))
        | st.lists(st.sampled_from(CHANNELS), min_size=1, max_size=4, unique=True),
        "segments": st.just([])
        | st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=3, unique=True),
        "categories": st.lists(st.sampled_from(CATEGORIES), max_size=2, unique=True),
        "value": st.floats(0, 1e4),
        "margin": st.none() | st.floats(0, 1),
        "priority": st.floats(0.01, 100),
        "cooldown_s": st.sampled_from([0, 0, 60, 3600, 86400, 7 * 86400]),
        "min_purchases": st.sampled_from([0, 0, 0, 1, 3]),
        "max_per_week": st.none() | st.sampled_from([1, 2, 4]),
        "daily_limit": st.none() | st.integers(1, 4),
    }
)
_campaign = st.tuples(st.none() | instants(), st.none() | instants())


@st.composite
def offers(draw: st.DrawFn, offer_id: str) -> Offer:
    """An offer with any channels, segments, cool-down, per-customer weekly cap, daily
    budget and, one in four, campaign dates."""
    start, end = draw(_campaign) if draw(st.integers(0, 3)) == 0 else (None, None)
    if start is not None and end is not None and end <= start:
        start, end = end, max(start, end + timedelta(seconds=1))
    return Offer(
        offer_id=offer_id,
        title=offer_id.upper(),
        available_from=start,
        available_until=end,
        **draw(_offer_fields),
    )


_offer_ids = [
    st.lists(st.sampled_from(OFFER_IDS), unique=True, min_size=n, max_size=5) for n in (0, 1)
]


@st.composite
def offer_lists(draw: st.DrawFn, min_size: int = 0) -> list[Offer]:
    """Up to five offers (none, or at least one), each with an id of its own."""
    ids = draw(_offer_ids[min_size])
    return [draw(offers(offer_id)) for offer_id in ids]


@st.composite
def catalogues(draw: st.DrawFn) -> OfferCatalogue:
    """A valid catalogue: offers, safe defaults (never budgeted) and contact rules."""
    offered = draw(offer_lists(min_size=1))
    unlimited = [o.offer_id for o in offered if o.daily_limit is None]
    defaults = [o for o in draw(st.permutations(unlimited)) if draw(st.booleans())]
    return OfferCatalogue(
        version="v-props",
        offers=offered,
        default_offers=list(defaults),
        contact_policy=draw(contact_rules()),
    )


@st.composite
def budgeted_catalogues(draw: st.DrawFn) -> OfferCatalogue:
    """A catalogue that also holds a voucher in short supply (a daily limit of 1 to 3)
    for everyone on every channel, so that decisions often spend a budget."""
    catalogue = draw(catalogues())
    voucher = Offer(
        offer_id="voucher",
        title="Voucher",
        channels=list(CHANNELS),
        value=100.0,
        priority=draw(st.sampled_from([1.0, 100.0])),
        daily_limit=draw(st.integers(1, 3)),
    )
    return OfferCatalogue(
        version=catalogue.version,
        offers=[*catalogue.offers, voucher],
        default_offers=catalogue.default_offers,
        contact_policy=catalogue.contact_policy,
    )


@st.composite
def budget_ledgers(draw: st.DrawFn, offered: list[Offer]) -> BudgetLedger | None:
    """None (no budgets read), or the day's ledger of ``offered``'s daily limits with some
    already spent, some to the limit."""
    if not draw(st.booleans()):
        return None
    limits = {o.offer_id: o.daily_limit for o in offered if o.daily_limit is not None}
    spent = {offer_id: draw(st.integers(0, limit)) for offer_id, limit in limits.items()}
    return BudgetLedger(T0.date(), limits, spent)


def _counts(keys: tuple[str, ...], *counts: int) -> st.SearchStrategy[dict[str, int]]:
    return st.dictionaries(st.sampled_from(keys), st.sampled_from(counts), max_size=len(keys))


# seconds before now: a few in the future, some right at a cool-down's end
_ago = st.integers(-600, 10 * 86400) | st.sampled_from([30, 3599, 3600, 86399, 86400, 604800])
_offers_history = st.fixed_dictionaries(
    {
        "shown_today": _counts(CHANNELS, 0, 0, 1, 2, 6),
        "shown_7d": _counts(CHANNELS, 0, 0, 1, 3, 12),
        "offers_7d": _counts(OFFER_IDS, 0, 1, 2, 4),
        "last_shown": st.dictionaries(st.sampled_from(OFFER_IDS), _ago),
    }
)
_alerts_history = st.tuples(
    st.dictionaries(st.sampled_from(ALERT_KINDS), _ago),
    st.dictionaries(st.sampled_from(ALERT_KINDS[:-1]), st.integers(1, 3)),
    # the call backs whose last card said not to call (the call caps were reached)
    st.sets(st.sampled_from(("save_desk", "retention_call", "win_back"))),
)


@st.composite
def contact_histories(draw: st.DrawFn, now: datetime = T0, alerts: bool = False) -> ContactHistory:
    """What Moments did to a customer lately: contacts per channel today and this week,
    offers shown (some within their cool-downs); with ``alerts``, the alerts raised
    instead (what the interventions read)."""
    if alerts:
        raised, priorities, capped = draw(_alerts_history)
        return ContactHistory(
            last_intervention={k: now - timedelta(seconds=s) for k, s in raised.items()},
            last_intervention_priority=priorities,
            last_intervention_capped=tuple(sorted(capped & raised.keys())),
        )
    shown = draw(_offers_history)
    last = {k: now - timedelta(seconds=s) for k, s in shown.pop("last_shown").items()}
    return ContactHistory(last_shown=last, **shown)


RECENT_TYPES = ("web_click", "purchase", "email", "call", "survey", "consent", "social_mention")
_recent = st.lists(
    st.tuples(st.integers(0, 200 * 86400), st.sampled_from(RECENT_TYPES)), max_size=4
)
_customer_fields = st.fixed_dictionaries(
    {
        "purchases": st.integers(0, 5),
        "spend": st.floats(0, 5000),
        "categories": st.dictionaries(st.sampled_from(CATEGORIES), st.integers(1, 9)),
        "emails": _counts(("unsubscribed", "bounced"), 0, 0, 1, 2),
        "consent": st.dictionaries(st.sampled_from(CHANNELS), st.sampled_from([True, True, False])),
        "email_subscribed": st.sampled_from([None, None, True, False]),
        "value": st.floats(0, 3000),
        "segment": st.sampled_from(SEGMENTS),
        "timezone": customer_zones,
    }
)


@st.composite
def customer_features(
    draw: st.DrawFn, now: datetime = T0, alerts: bool = False
) -> CustomerFeatures:
    """A known customer: consent given or withdrawn per channel, email unsubscribes and
    bounces, a segment, a timezone and a contact history; with ``alerts``, the alerts
    raised lately, complaints and the recent touchpoints instead of the offers shown."""
    extra: dict[str, Any] = {}
    if alerts:
        recent = sorted(draw(_recent))  # newest first
        extra["recent"] = [
            RecentTouchpoint(now - timedelta(seconds=s), kind, f"r{i}")
            for i, (s, kind) in enumerate(recent)
        ]
        extra["complaints_30d"] = draw(st.integers(0, 5))
    return CustomerFeatures(
        contact=draw(contact_histories(now, alerts)), **draw(_customer_fields), **extra
    )


@st.composite
def customers_shown(draw: st.DrawFn, offered: list[Offer], now: datetime = T0) -> CustomerFeatures:
    """A known customer who was shown some of ``offered`` lately: when (often right
    before, at or after the end of its cool-down) and how often this week (often one
    below or at its weekly cap per customer)."""
    features = draw(customer_features(now))
    last_shown, offers_7d = dict(features.contact.last_shown), dict(features.contact.offers_7d)
    for offer in offered:
        if draw(st.booleans()):
            edge = offer.cooldown_s + draw(st.sampled_from([-1, 0, 1]))
            ago = draw(st.just(max(edge, 0)) | _ago)
            last_shown[offer.offer_id] = now - timedelta(seconds=ago)
        if offer.max_per_week is not None and draw(st.booleans()):
            offers_7d[offer.offer_id] = offer.max_per_week - draw(st.sampled_from([0, 1]))
    contact = msgspec.structs.replace(features.contact, last_shown=last_shown, offers_7d=offers_7d)
    return msgspec.structs.replace(features, contact=contact)


_outcomes = st.lists(
    st.tuples(
        st.builds(
            CustomerFeatures,
            segment=st.sampled_from(SEGMENTS),
            value=st.floats(0, 3000),
            categories=st.dictionaries(st.sampled_from(CATEGORIES), st.integers(1, 9)),
        ),
        st.sampled_from(CHANNELS),
        st.none() | st.sampled_from(CATEGORIES),
        st.sampled_from(OFFER_IDS),
        st.sampled_from([0.0, 0.3, 1.0]),
    ),
    max_size=12,
)


@st.composite
def offer_models(draw: st.DrawFn) -> LinUCBOffers:
    """The offer bandit after learning some outcomes (offer, reward) on real decision
    contexts."""
    model = LinUCBOffers(
        DIMENSION, alpha=draw(st.floats(0, 1)), epsilon=draw(st.sampled_from([0.0, 0.05, 0.3]))
    )
    for features, channel, category, offer_id, reward in draw(_outcomes):
        model.learn_one(context_vector(features, channel, category), offer_id, reward)
    return model


@st.composite
def offer_policies(draw: st.DrawFn, catalogue: OfferCatalogue) -> OfferPolicy:
    """Either policy, deciding with ``catalogue`` for customers outside the control
    group: the rules, or a trained bandit."""
    holder, screen = CatalogueHolder(catalogue), ContactPolicy(NOBODY)
    if draw(st.booleans()):
        return RuleBasedOfferPolicy(holder, screen)
    return LearnedOfferPolicy(holder, screen, ModelHolder(draw(offer_models())))
