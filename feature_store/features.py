"""The per-customer view read back from the store, as plain data."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec

from feature_store.contact_days import (
    contact_zone,
    contacts_from,
    day_start_ms,
    quartered_days,
    week_start_ms,
)
from feature_store.contact_facts import LAST_INTERVENTION_CAPPED, LAST_INTERVENTION_PRIORITY
from feature_store.derived import (
    ACTIVITY_WINDOWS,
    Buckets,
    SegmentThresholds,
    by_prefix,
    decayed_affinity,
    decayed_experience,
    segment_of,
    value_estimate,
)
from feature_store.facts import (
    ACCEPTED,
    BUCKET_CATEGORIES,
    CONSENT_CHANNELS,
    DAY_MS,
    by_the_customer,
    recent_entry,
)
from schemas import TouchpointEvent

CONTACT_CHANNELS = ("web", "email", "call", "sms")  # where Moments can reach a customer
# the window buckets' metrics no feature is built from: each bucket's count of the
# categories it names (kept for the writes' room)
UNREAD_METRICS = (BUCKET_CATEGORIES,)
# and those only the descriptive figures count (activity per type and per channel), which
# a read for decisions leaves empty: not parsed there (about half a bucket's fields)
DESCRIPTIVE_METRICS = ("n:", "ch:")


class RecentTouchpoint(msgspec.Struct, frozen=True):
    ts: datetime
    type: str
    event_id: str


def recent_touchpoint(entry: str) -> RecentTouchpoint:
    """An entry of the recent-touchpoints list (``"<ms>|<kind>|<event id>"``).

    >>> recent_touchpoint("1795000000000|web_click|w1").type
    'web_click'
    """
    ms, kind, event_id = entry.split("|", 2)
    return RecentTouchpoint(stored_time(ms), kind, event_id)


def recent_touchpoint_of(event: TouchpointEvent) -> RecentTouchpoint | None:
    """The event as the customer's recent touchpoints hold it, read back (to the
    millisecond); ``None`` for one that was not the customer's doing."""
    return recent_touchpoint(recent_entry(event)) if by_the_customer(event) else None


class ContactHistory(msgspec.Struct, frozen=True, kw_only=True):
    """What Moments already did to the customer: for fatigue caps and cool-downs. Today
    and the week (today and the six days before it) are the customer's own days, from
    their local midnight (:mod:`feature_store.contact_days`)."""

    shown_today: dict[str, int] = msgspec.field(default_factory=dict)  # per channel
    shown_7d: dict[str, int] = msgspec.field(default_factory=dict)
    offers_7d: dict[str, int] = msgspec.field(default_factory=dict)  # per offer
    last_shown: dict[str, datetime] = msgspec.field(default_factory=dict)  # per offer
    last_contact: dict[str, datetime] = msgspec.field(default_factory=dict)  # per channel
    last_intervention: dict[str, datetime] = msgspec.field(default_factory=dict)  # per kind
    # the priority (1 most urgent) of that newest intervention, per kind, where it is known
    # (not for one stored before priorities were: the cool-downs count it as 1)
    last_intervention_priority: dict[str, int] = msgspec.field(default_factory=dict)
    # the kinds whose newest intervention was raised past the call channel's caps (it
    # said not to call): their cool-downs hold only while the caps do
    last_intervention_capped: tuple[str, ...] = ()
    interventions_30d: int = 0
    # when the customer last accepted each offer (its ``accepted`` outcome's time), per
    # offer: kept as long as their profile (:mod:`feature_store.acceptances`)
    accepted: dict[str, datetime] = msgspec.field(default_factory=dict)


class CustomerFeatures(msgspec.Struct, frozen=True, kw_only=True):
    """What Moments knows about one customer at one moment."""

    events: int = 0
    by_type: dict[str, int] = msgspec.field(default_factory=dict)  # lifetime
    activity: dict[str, dict[str, int]] = msgspec.field(default_factory=dict)  # window -> type
    channel_activity: dict[str, dict[str, int]] = msgspec.field(default_factory=dict)
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    last_purchase: datetime | None = None
    purchases: int = 0
    spend: float = 0.0
    purchases_365d: int = 0
    spend_365d: float = 0.0
    average_order_value: float | None = None  # of the purchases counted in spend
    # spend in currencies with no rate to the base one (MOMENTS_CURRENCY), per currency
    spend_unconverted: dict[str, float] = msgspec.field(default_factory=dict)
    categories: dict[str, int] = msgspec.field(default_factory=dict)  # lifetime counts
    category_affinity: dict[str, float] = msgspec.field(default_factory=dict)  # decayed, top 5
    call_reasons: dict[str, int] = msgspec.field(default_factory=dict)
    emails: dict[str, int] = msgspec.field(default_factory=dict)
    negative_mentions: int = 0
    negative_reach: int = 0
    complaints_30d: int = 0
    negative_mentions_30d: int = 0
    negative_reach_30d: int = 0
    sentiment: float | None = None  # lifetime mean of call and social sentiment, -1..1
    survey: float | None = None  # lifetime mean, 0..1
    experience: float | None = None  # time-decayed, 0..1, complaints counted against it
    channel_mix: dict[str, float] = msgspec.field(default_factory=dict)
    preferred_channel: str | None = None  # the most used of web, email, call, sms
    consent: dict[str, bool] = msgspec.field(default_factory=dict)
    # False after an unsubscribe, True once email consent is granted (over 15 minutes)
    # after it; None when the customer has done neither (or did before Moments kept it:
    # see ``emails``)
    email_subscribed: bool | None = None
    contact: ContactHistory = msgspec.field(default_factory=ContactHistory)
    risk_snapshot: str | None = None  # JSON of the feature snapshot awaiting its label
    risk_band: str | None = None  # "high" or "low": where churn risk was last seen
    risk_band_ms: int | None = None  # the time of the touchpoint it was seen at (ms)
    value: float = 0.0  # expected spend over the next year
    segment: str = "new"
    timezone: str | None = None  # the customer's own (IANA), as the newest touchpoint told it
    recent: list[RecentTouchpoint] = msgspec.field(default_factory=list)  # newest first

    def consents_to(self, channel: str, granted_only: bool = False) -> bool:
        """Consent is assumed until withdrawn (opt-out), unless ``granted_only`` (opt-in:
        only consent the customer granted counts). Of a grant and a withdrawal, the later
        holds; a grant lifts a withdrawal only when dated over 15 minutes after it."""
        return self.consent.get(channel, not granted_only)

    def top_categories(self, n: int = 3) -> list[str]:
        source: dict[str, float] = dict(self.category_affinity) or {
            k: float(v) for k, v in self.categories.items()
        }
        ranked = sorted(source.items(), key=lambda kv: (-kv[1], kv[0]))
        return [name for name, _ in ranked[:n]]


def withdrawals_only(withdrawals: Sequence[str]) -> CustomerFeatures | None:
    """The features of someone Moments knows nothing of but their withdrawals (fields of
    :data:`feature_store.facts.WITHDRAWAL_FIELDS`, as an erasure keeps them): a stranger
    in all else; ``None`` for none.

    >>> f = withdrawals_only(["consent:sms", "subscribed:email"])
    >>> f.consent, f.email_subscribed, f.segment
    ({'sms': False}, False, 'new')
    >>> withdrawals_only([]) is None
    True
    """
    kept = set(withdrawals)
    consent = {ch: False for ch in CONSENT_CHANNELS if f"consent:{ch}" in kept}
    unsubscribed = "subscribed:email" in kept
    if not consent and not unsubscribed:
        return None
    return CustomerFeatures(consent=consent, email_subscribed=False if unsubscribed else None)


def stored_time(ms: str | int) -> datetime:
    """A time stored in milliseconds since the epoch. One no date can hold (a tool's, a
    bug's) raises ValueError, as one that is no number does: converted, a time past year
    2 million raised OSError, which the worker's batch retries take for an outage.

    >>> stored_time("1795000000000").year
    2026
    >>> stored_time(-10**20)
    Traceback (most recent call last):
    ValueError: a time no date can hold: -100000000000000000000 ms
    """
    at = int(ms)
    try:
        return datetime.fromtimestamp(at / 1000, UTC)
    except (OverflowError, OSError, ValueError) as exc:  # past year 9999, or past time_t
        raise ValueError(f"a time no date can hold: {at} ms") from exc


def _dt(ms: str | int | None) -> datetime | None:
    return None if ms is None else stored_time(ms)


def _mean(total: str | None, n: str | None) -> float | None:
    if not n or int(n) == 0:
        return None
    return int(total or 0) / 1000 / int(n)


def _ints(group: dict[str, str] | None) -> dict[str, int]:
    return {k: int(v) for k, v in group.items()} if group else {}


def _dates(group: dict[str, str] | None) -> dict[str, datetime]:
    if not group:
        return {}
    return {k: stored_time(v) for k, v in group.items()}


def _priorities(times: dict[str, str] | None, priorities: dict[str, str] | None) -> dict[str, int]:
    """Each kind's newest intervention priority, where its stamp is that newest
    intervention's time (a priority left by an older alert, when one stored without a
    priority came after it, is not that alert's).

    >>> _priorities({"save_desk": "7", "win_back": "9"},
    ...             {"save_desk": "2", "save_desk@": "7", "win_back": "1", "win_back@": "5"})
    {'save_desk': 2}
    """
    if not times or not priorities:
        return {}
    return {
        kind: int(priorities[kind])
        for kind, at in times.items()
        if kind in priorities and int(priorities.get(f"{kind}@") or -1) == int(at)
    }


def _capped(times: dict[str, str] | None, capped: dict[str, str] | None) -> tuple[str, ...]:
    """The kinds whose newest intervention was raised past the call caps: the capped
    time kept is that newest time (a newer alert, not capped, left it behind).

    >>> _capped({"save_desk": "7", "win_back": "9"}, {"save_desk": "7", "win_back": "5"})
    ('save_desk',)
    """
    if not times or not capped:
        return ()
    return tuple(sorted(k for k, at in times.items() if k in capped and int(capped[k]) >= int(at)))


def build_features(
    profile: dict[str, str],
    windows: dict[str, str],
    recent: list[str],
    now_ms: int,
    contacts: dict[str, str] | None = None,
    thresholds: SegmentThresholds = SegmentThresholds(),  # noqa: B008 (frozen, shared)
    half_life_days: float = 14.0,
    full: bool = True,
    ahead_ms: int = 0,
    home_timezone: str = "UTC",
) -> CustomerFeatures:
    """Build :class:`CustomerFeatures` from the raw keys, as of ``now_ms``, counting what
    was dated up to ``ahead_ms`` after it as current (a read at the clock's now:
    :meth:`Buckets.window`). The contact counts of today and the week count the
    customer's own days, or those of ``home_timezone`` (the catalogue's) when no
    touchpoint told their timezone.

    With ``full=False``, only what offer decisions read is built (segment, value,
    experience, tastes, consent, contact history, purchases, emails, dates); the
    descriptive figures (activity per window, channel mix, recent touchpoints, counts
    by type, call reasons, sentiment, survey) are left empty, and the 5-minute and
    hourly buckets are not needed.
    """

    def num(name: str) -> int:
        return int(profile.get(name, 0))

    groups = by_prefix(profile, skip_empty=False)
    buckets = (
        Buckets(windows, "mhdk", skip=UNREAD_METRICS)
        if full
        else Buckets(windows, "dk", skip=(*UNREAD_METRICS, *DESCRIPTIVE_METRICS))
    )  # decisions: daily and weekly
    names = (*ACTIVITY_WINDOWS, "365d") if full else ("30d", "365d")
    wins = {name: buckets.window(name, now_ms, ahead_ms) for name in names}
    split = {name: by_prefix(wins[name]) for name in ACTIVITY_WINDOWS} if full else {}
    daily = buckets.daily(now_ms, ahead_ms=ahead_ms)
    month = wins["30d"]
    sentiment_n = num("call_sent_n") + num("social_sent_n")
    sentiment = (
        (num("call_sent_milli") + num("social_sent_milli")) / 1000 / sentiment_n
        if sentiment_n
        else None
    )
    complaints = month.get("complaints", 0)
    negative = month.get("negative_mentions", 0)
    experience = _experience(profile, daily, complaints + negative, thresholds, half_life_days)
    channel_mix, preferred = (
        _channel_mix(split["30d"].get("ch") or _ints(groups.get("ch"))) if full else ({}, None)
    )
    year = wins["365d"]
    purchases_365d = year.get("purchases", 0)
    spend_365d = year.get("spend_cents", 0) / 100
    first = int(profile["first_seen"]) if "first_seen" in profile else None
    last_purchase = int(profile["last_purchase"]) if "last_purchase" in profile else None
    value = value_estimate(spend_365d, first, last_purchase, now_ms)
    days_of = contact_zone(profile.get("timezone"), home_timezone)
    contact = _contact_history(groups, contacts or {}, now_ms, ahead_ms, days_of)
    items = [recent_touchpoint(entry) for entry in recent] if full else []
    items.sort(key=lambda r: (r.ts, r.event_id), reverse=True)
    consents = groups.get("consent") or {}
    consent = {ch: consents[ch] == "1" for ch in CONSENT_CHANNELS if ch in consents}
    purchases = num("purchases")
    counted = purchases - num("purchases_unconverted")  # the purchases in spend
    spend = num("spend_cents") / 100
    return CustomerFeatures(
        events=num("n"),
        by_type=_ints(groups.get("n")) if full else {},
        activity={w: split[w].get("n", {}) for w in split},
        channel_activity={w: split[w].get("ch", {}) for w in split},
        first_seen=_dt(first),
        last_seen=_dt(profile.get("last_seen")),
        last_purchase=_dt(last_purchase),
        purchases=purchases,
        spend=spend,
        purchases_365d=purchases_365d,
        spend_365d=spend_365d,
        average_order_value=round(spend / counted, 2) if counted > 0 else None,
        spend_unconverted={c: v / 100 for c, v in _ints(groups.get("spend_unconverted")).items()},
        categories=_ints(groups.get("cat")),
        category_affinity=decayed_affinity(daily, half_life_days),
        call_reasons=_ints(groups.get("call_reason")) if full else {},
        emails=_ints(groups.get("email")),
        negative_mentions=num("negative_mentions"),
        negative_reach=num("negative_reach"),
        complaints_30d=complaints,
        negative_mentions_30d=negative,
        negative_reach_30d=month.get("negative_reach", 0),
        sentiment=sentiment if full else None,
        survey=_mean(profile.get("survey_milli"), profile.get("survey_n")) if full else None,
        experience=experience,
        channel_mix=channel_mix,
        preferred_channel=preferred,
        consent=consent,
        email_subscribed=_flag((groups.get("subscribed") or {}).get("email")),
        contact=contact,
        risk_snapshot=profile.get("risk_snapshot"),
        risk_band=profile.get("risk_band"),
        risk_band_ms=_int_or_none(profile.get("risk_band@")),
        value=value,
        segment=segment_of(experience, value, num("n"), purchases, thresholds),
        timezone=profile.get("timezone"),
        recent=items,
    )


def _experience(
    profile: dict[str, str],
    daily: list[tuple[float, dict[str, int]]],
    complaints_30d: int,
    thresholds: SegmentThresholds,
    half_life_days: float,
) -> float | None:
    """How the customer's experience reads (0 to 1): the decayed daily figures, else the
    surveys' mean, less 0.05 for each complaint or negative mention of the last 30 days
    (ten at most); None when nothing says."""
    experience = decayed_experience(daily, half_life_days)
    if experience is None:
        experience = _mean(profile.get("survey_milli"), profile.get("survey_n"))
    if complaints_30d:
        base = thresholds.unknown_experience if experience is None else experience
        experience = max(0.0, base - 0.05 * min(complaints_30d, 10))
    # as shown, and as the segment reads it: 0.49999... is 0.5
    return None if experience is None else round(experience, 6)


def _contact_history(
    groups: dict[str, dict[str, str]],
    contacts: dict[str, str],
    now_ms: int,
    ahead_ms: int,
    timezone: str,
) -> ContactHistory:
    """What Moments sent the customer lately: the contact counts' buckets, over the days
    of ``timezone``, and the last times kept in the profile."""
    buckets = Buckets(contacts, "dq")
    daily, quarters = buckets.at("d"), buckets.at("q")
    last = (now_ms + ahead_ms) // DAY_MS  # dated up to ahead_ms after now: current
    whole = quartered_days(contacts, daily)
    today = by_prefix(contacts_from(daily, quarters, day_start_ms(now_ms, timezone), last, whole))
    week = by_prefix(contacts_from(daily, quarters, week_start_ms(now_ms, timezone), last))
    return ContactHistory(
        shown_today=today.get("shown", {}),
        shown_7d=week.get("shown", {}),
        offers_7d=week.get("offer", {}),
        last_shown=_dates(groups.get("last_shown")),
        last_contact=_dates(groups.get("last_contact")),
        last_intervention=_dates(groups.get("last_intervention")),
        last_intervention_priority=_priorities(
            groups.get("last_intervention"), groups.get(LAST_INTERVENTION_PRIORITY)
        ),
        last_intervention_capped=_capped(
            groups.get("last_intervention"), groups.get(LAST_INTERVENTION_CAPPED)
        ),
        interventions_30d=buckets.window("30d", now_ms, ahead_ms).get("interventions", 0),
        accepted=_dates(groups.get(ACCEPTED)),
    )


def _flag(stored: str | None) -> bool | None:
    return None if stored is None else stored == "1"


def _int_or_none(stored: str | None) -> int | None:
    return int(stored) if stored is not None and stored.lstrip("-").isdigit() else None


def _channel_mix(counts: dict[str, int]) -> tuple[dict[str, float], str | None]:
    """Each channel's share of the touchpoints, and the most used reachable channel."""
    counts = {k: v for k, v in counts.items() if v}
    total = sum(counts.values())
    mix = {k: round(v / total, 6) for k, v in sorted(counts.items())}
    reachable = {k: v for k, v in counts.items() if k in CONTACT_CHANNELS}
    preferred = min(reachable, key=lambda k: (-reachable[k], k)) if reachable else None
    return mix, preferred
