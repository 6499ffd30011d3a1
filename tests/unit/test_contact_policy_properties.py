"""Properties of ``ContactPolicy.screen`` on any catalogue, customer and moment: what a CRM
team promises its customers (their consent, quiet hours in their own timezone, fatigue
caps, cool-downs, per-offer caps and budgets) holds for every offer the screen allows,
and everything it holds back is named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import msgspec
from hypothesis import example, given, note, settings
from hypothesis import strategies as st

from agents.contact_policy import FIRST_CONTACT, ContactPolicy
from agents.offer_budget import BudgetLedger
from feature_store import ContactHistory, CustomerFeatures
from schemas import ContactRules, Offer
from schemas.contact_rules import OUTBOUND
from tests.unit.decision_strategies import (
    CHANNELS,
    NOBODY,
    ZONES,
    around_dst_change,
    budget_ledgers,
    channels,
    contact_rules,
    customer_features,
    customers_shown,
    instants,
    offer_lists,
    span,
)

POLICY = ContactPolicy(NOBODY)
# on every channel, for everyone, at any time: only the contact rules can hold it back
EVERYWHERE = Offer(offer_id="everywhere", title="Everywhere", channels=list(CHANNELS))
QUICK = settings(max_examples=40, deadline=None)


def eligible(offer: Offer, channel: str, features: CustomerFeatures, now: datetime) -> bool:
    """Whether the catalogue means ``offer`` for this customer here and now."""
    return (
        channel in offer.channels
        and (not offer.segments or features.segment in offer.segments)
        and features.purchases >= offer.min_purchases
        and offer.available_at(now)
    )


def avoids_email(features: CustomerFeatures) -> bool:
    """Unsubscribed (the flag, or a count kept before it was), or bounced twice."""
    unsubscribed = (
        features.emails.get("unsubscribed", 0) > 0
        if features.email_subscribed is None
        else not features.email_subscribed
    )
    return unsubscribed or features.emails.get("bounced", 0) >= 2


@QUICK
@given(
    channel=st.sampled_from(CHANNELS),
    inbound=st.booleans(),
    rules=contact_rules(),
    data=st.data(),
)
def test_a_channel_the_customer_turned_away_from_is_never_used(
    channel: str, inbound: bool, rules: ContactRules, data: st.DataObject
) -> None:
    """A withdrawal of consent suppresses the channel even when the customer calls in; an
    opt-in channel needs consent granted unless they reached out; email is never used
    after an unsubscribe or two bounces. A breach here is a compliance incident."""
    now = data.draw(instants())
    features = data.draw(customer_features(now))
    said = data.draw(st.sampled_from([True, False, None]))  # on this channel
    consent = {c: v for c, v in features.consent.items() if c != channel}
    features = msgspec.structs.replace(
        features,
        consent=consent if said is None else {**consent, channel: said},
        contact=ContactHistory(),  # no contact yet: no cap or cool-down holds them back
    )
    offered = [EVERYWHERE, *data.draw(offer_lists())]
    verdict = POLICY.screen("c1", channel, features, offered, now, rules=rules, inbound=inbound)
    note(repr(verdict))
    if said is False or (rules.needs_grant(channel) and not inbound and said is not True):
        assert verdict.allowed == []
    if channel == "email" and avoids_email(features):
        assert verdict.allowed == []


def local_minute(now: datetime, zone: str) -> int:
    local = now.astimezone(ZoneInfo(zone))
    return local.hour * 60 + local.minute


def went_back_from(now: datetime, zone: str) -> int | None:
    """In the second pass of a time the clocks went back over, the local minute just
    before they went back (found minute by minute with ``zoneinfo``); else ``None``."""
    tz = ZoneInfo(zone)
    local = now.astimezone(tz)
    if not local.fold:
        return None
    at = now
    while at.astimezone(tz).utcoffset() == local.utcoffset():
        at -= timedelta(minutes=1)
    return local_minute(at, zone)


def within(minute: int, quiet: str) -> bool:
    """Whether a minute of the day falls in ``"HH:MM-HH:MM"``, a span that may cross
    midnight."""
    start, end = (int(t[:2]) * 60 + int(t[3:]) for t in quiet.split("-"))
    return start <= minute < end if start < end else minute >= start or minute < end


@settings(max_examples=100, deadline=None)  # cheap: no catalogue to draw
@given(
    dst=around_dst_change(),
    own=st.sampled_from(["dst zone", "dst zone", "none", "not a zone", "first contact"]),
    catalogue_zone=st.sampled_from(ZONES),
    channel=st.sampled_from(CHANNELS),
    inbound=st.sampled_from([False, False, True]),
    edge=st.integers(-90, 90),
    length=st.integers(1, 1439) | st.integers(60, 720),
    starts=st.booleans(),
)
@example(  # 01:30 again on Lord Howe, the clocks back from 02:00: 01:59-02:00 holds on
    dst=("Australia/Lord_Howe", datetime(2026, 4, 4, 15, 0, tzinfo=UTC)),
    own="dst zone",
    catalogue_zone="UTC",
    channel="web",
    inbound=False,
    edge=29,
    length=1,
    starts=True,
)
def test_quiet_hours_hold_in_the_customers_own_timezone_across_dst(
    dst: tuple[str, datetime],
    own: str,
    catalogue_zone: str,
    channel: str,
    inbound: bool,
    edge: int,
    length: int,
    starts: bool,
) -> None:
    """Quiet hours are read on the customer's local clock (their own zone where known,
    else the catalogue's), on the days summer time starts or ends too (those in force
    when the clocks go back hold through the time lived twice); a customer who
    calls in is answered whatever the hour. Checked against ``zoneinfo`` directly, with
    the span's edge within 90 minutes of the local time."""
    zone, now = dst
    customer_zone = {"dst zone": zone, "not a zone": "Mars/Olympus"}.get(own)
    effective = zone if own == "dst zone" else catalogue_zone
    minute = local_minute(now, effective)
    # the span starts (or ends) within 90 minutes of the local time, either side of it
    edge_minute = (minute + edge) % 1440
    if starts:
        quiet = span(edge_minute, (edge_minute + length) % 1440)
    else:
        quiet = span((edge_minute - length) % 1440, edge_minute)
    rules = ContactRules(quiet_hours={channel: quiet}, timezone=catalogue_zone)
    features = None if own == "first contact" else CustomerFeatures(timezone=customer_zone)
    verdict = POLICY.screen(
        "c1", channel, features, [EVERYWHERE], now, rules=rules, inbound=inbound
    )
    note(f"{quiet} at {now.astimezone(ZoneInfo(effective))} ({effective}): {verdict}")
    # quiet hours in force when the clocks went back hold through the time lived twice
    before = went_back_from(now, effective)
    if (within(minute, quiet) or (before is not None and within(before, quiet))) and not inbound:
        assert verdict.allowed == [] and verdict.reasons == [f"suppressed:quiet_hours:{channel}"]
    else:
        assert verdict.allowed == [EVERYWHERE] and verdict.reasons == []


@settings(max_examples=60, deadline=None)
@given(
    channel=channels,
    inbound=st.booleans(),
    rules=contact_rules(),
    known=st.sampled_from([True, True, True, False]),  # else a first contact
    data=st.data(),
)
def test_allowed_offers_are_within_caps_cool_downs_and_budgets(
    channel: str, inbound: bool, rules: ContactRules, known: bool, data: st.DataObject
) -> None:
    """Every offer allowed is meant for this customer here and now, out of its
    cool-down, under its weekly cap per customer and its daily budget, on a channel
    under its daily and weekly caps (and the outbound ones, when Moments reaches out).
    The allowed offers keep the catalogue's order, once each, and screening spends
    nothing of the budgets (the decision does)."""
    now = data.draw(instants())
    offered = data.draw(offer_lists(min_size=1))
    features = data.draw(customers_shown(offered, now)) if known else None
    budgets = data.draw(budget_ledgers(offered))
    spent_before = None if budgets is None else dict(budgets.spent)
    verdict = POLICY.screen("c1", channel, features, offered, now, budgets, rules, inbound)
    note(repr(verdict))
    assert verdict.allowed == [o for o in offered if o in verdict.allowed]
    assert budgets is None or budgets.spent == spent_before
    if not verdict.allowed:
        return
    f = features or FIRST_CONTACT
    shown = f.contact
    assert shown.shown_today.get(channel, 0) < rules.daily_cap(channel)
    assert shown.shown_7d.get(channel, 0) < rules.weekly_cap(channel)
    if channel in OUTBOUND and not inbound:
        day, week = rules.outbound_caps()
        assert sum(shown.shown_today.get(c, 0) for c in OUTBOUND) < day
        assert sum(shown.shown_7d.get(c, 0) for c in OUTBOUND) < week
    for offer in verdict.allowed:
        assert eligible(offer, channel, f, now)
        last = shown.last_shown.get(offer.offer_id)
        if offer.cooldown_s and last is not None:
            assert now - last >= timedelta(seconds=offer.cooldown_s)
        if offer.max_per_week is not None:
            assert shown.offers_7d.get(offer.offer_id, 0) < offer.max_per_week
        if budgets is not None and offer.daily_limit is not None:
            assert budgets.spent[offer.offer_id] < offer.daily_limit


@QUICK
@given(channel=st.sampled_from(CHANNELS), rules=contact_rules(), data=st.data())
def test_a_customer_who_reached_out_is_held_only_by_what_holds_inbound(
    channel: str, rules: ContactRules, data: st.DataObject
) -> None:
    """A customer on the line is screened exactly as Moments reaching out would be
    without quiet hours, the outbound caps and opt-in (a withdrawal, the channel's own
    caps and the per-offer rules still hold): so never offered less."""
    now = data.draw(instants())
    features = data.draw(st.none() | customer_features(now))
    offered = data.draw(offer_lists())
    lifted = msgspec.structs.replace(
        rules,
        quiet_hours={},
        outbound_daily_cap=None,
        outbound_weekly_cap=None,
        consent_required=[],
    )
    out = POLICY.screen("c1", channel, features, offered, now, rules=rules, inbound=False)
    came_in = POLICY.screen("c1", channel, features, offered, now, rules=rules, inbound=True)
    assert came_in == POLICY.screen("c1", channel, features, offered, now, rules=lifted)
    assert {o.offer_id for o in out.allowed} <= {o.offer_id for o in came_in.allowed}


def is_so(
    reason: str,
    channel: str,
    features: CustomerFeatures,
    offered: list[Offer],
    now: datetime,
    budgets: BudgetLedger | None,
    rules: ContactRules,
    inbound: bool,
) -> bool:
    """Whether what ``reason`` says of the customer, the channel or an offer is so."""
    shown, offer = features.contact, {o.offer_id: o for o in offered}
    match reason.split(":"):
        case ["suppressed", "quiet_hours", ch]:
            zone = features.timezone if features.timezone in ZONES else rules.timezone
            quiet = ch in rules.quiet_hours and within(
                local_minute(now, zone), rules.quiet_hours[ch]
            )
            return ch == channel and not inbound and quiet
        case ["suppressed", "consent", ch]:
            return ch == channel and features.consent.get(ch) is False
        case ["suppressed", "consent_unknown", ch]:
            opt_in = rules.needs_grant(ch) and not inbound
            return ch == channel and opt_in and ch not in features.consent
        case ["suppressed", "channel_avoided", "email"]:
            return channel == "email" and avoids_email(features)
        case ["suppressed", "fatigue", "outbound", period]:
            day, week = rules.outbound_caps()
            counts, cap = (shown.shown_today, day) if period == "day" else (shown.shown_7d, week)
            used = sum(counts.get(c, 0) for c in OUTBOUND)
            return channel in OUTBOUND and not inbound and used >= cap
        case ["suppressed", "fatigue", ch, "day"]:
            return ch == channel and shown.shown_today.get(ch, 0) >= rules.daily_cap(ch)
        case ["suppressed", "fatigue", ch, "week"]:
            return ch == channel and shown.shown_7d.get(ch, 0) >= rules.weekly_cap(ch)
        case ["suppressed", "cooldown", o]:
            last, cool_down = shown.last_shown.get(o), timedelta(seconds=offer[o].cooldown_s)
            return last is not None and now - last < cool_down
        case ["suppressed", "cap", o]:
            cap = offer[o].max_per_week
            return cap is not None and shown.offers_7d.get(o, 0) >= cap
        case ["suppressed", "budget", o]:
            limit = offer[o].daily_limit
            return budgets is not None and limit is not None and budgets.spent[o] >= limit
    return False


@settings(max_examples=60, deadline=None)
@given(
    channel=channels,
    inbound=st.booleans(),
    rules=contact_rules(),
    data=st.data(),
)
def test_every_offer_held_back_has_its_reason_and_every_reason_is_so(
    channel: str, inbound: bool, rules: ContactRules, data: st.DataObject
) -> None:
    """A CRM team must see why a customer got nothing, and be told the truth: a
    channel-wide suppression is the only reason given and allows nothing; otherwise
    each offer meant for the customer is either allowed or named by exactly one reason
    (cool-down, cap or budget). Every reason holds of the customer, the channel and the
    moment (a customer who called in is never held back by quiet hours, the outbound
    caps or opt-in)."""
    now = data.draw(instants())
    offered = data.draw(offer_lists(min_size=1))
    features = data.draw(customers_shown(offered, now))
    budgets = data.draw(budget_ledgers(offered))
    verdict = POLICY.screen("c1", channel, features, offered, now, budgets, rules, inbound)
    note(repr(verdict))
    for reason in verdict.reasons:
        assert is_so(reason, channel, features, offered, now, budgets, rules, inbound), reason
    per_offer = ("suppressed:cooldown:", "suppressed:cap:", "suppressed:budget:")
    channel_wide = [r for r in verdict.reasons if not r.startswith(per_offer)]
    if channel_wide:
        assert verdict.allowed == [] and verdict.reasons == channel_wide
        assert len(channel_wide) == 1
        return
    allowed = {o.offer_id for o in verdict.allowed}
    named = [r.rsplit(":", 1)[1] for r in verdict.reasons]
    meant = [o for o in offered if eligible(o, channel, features, now)]
    assert sorted(named) == sorted(o.offer_id for o in meant if o.offer_id not in allowed)
    assert allowed <= {o.offer_id for o in meant}
