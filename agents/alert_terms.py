"""What the contact policy says of the calls an alert asks for: whether it would make
the customer the retention offer on a call now, whether calls are in their quiet hours,
and whether the customer reached the call channel's caps. Pure: the answers are passed
to :func:`agents.interventions.interventions_for` as plain values (a refusal's reason,
a local time, the cap reached), so the alerts' wording agrees with the decisions Moments
takes itself.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from agents.alert_actions import RETENTION_OFFER, CallsCapped
from agents.contact_policy import ContactPolicy, fatigue
from agents.offer_budget import BudgetLedger
from feature_store import CustomerFeatures
from schemas import ContactRules, OfferCatalogue


def retention_offer_refused(
    policy: ContactPolicy,
    catalogue: OfferCatalogue,
    customer_id: str,
    features: CustomerFeatures,
    now: datetime,
    budgets: BudgetLedger | None,
    inbound: bool,
) -> str | None:
    """Why ``policy`` would not make the customer the :data:`RETENTION_OFFER` on a call
    now (its reason code, or ``not_in_catalogue:``, ``not_available:`` or
    ``not_eligible:`` and the offer), ``None`` if it would. Nothing is spent. The call
    channel's quiet hours are left out: a call back waits for their end (the alert says
    so), and the customer on the line is not held by them.

    >>> from datetime import UTC
    >>> from agents.control_group import ControlGroup
    >>> from schemas import Offer
    >>> voucher = Offer(offer_id=RETENTION_OFFER, title="Voucher", channels=["call"],
    ...                 segments=["at_risk"])
    >>> catalogue = OfferCatalogue(version="1", offers=[voucher])
    >>> policy, at = ContactPolicy(ControlGroup("salt", 0.0)), datetime(2026, 12, 7, tzinfo=UTC)
    >>> def refused(segment: str) -> str | None:
    ...     return retention_offer_refused(policy, catalogue, "c1",
    ...         CustomerFeatures(segment=segment), at, None, inbound=False)
    >>> refused("at_risk"), refused("model")
    (None, 'not_eligible:service-recovery-voucher')
    """
    offer = catalogue.by_id(RETENTION_OFFER)
    if offer is None:
        return f"not_in_catalogue:{RETENTION_OFFER}"
    rules = _without_quiet_calls(catalogue.contact_policy)
    verdict = policy.screen(customer_id, "call", features, [offer], now, budgets, rules,
                            inbound=inbound)  # fmt: skip
    if verdict.allowed:
        return None
    if verdict.reasons:
        return verdict.reasons[0]
    if not offer.available_at(now):
        return f"not_available:{RETENTION_OFFER}"
    return f"not_eligible:{RETENTION_OFFER}"  # its channels, segments or purchases


_LEFT_OUT: list[tuple[ContactRules, ContactRules]] = []  # the last rules, without


def _without_quiet_calls(rules: ContactRules) -> ContactRules:
    """``rules`` without the call channel's quiet hours (the last asked for kept: one
    catalogue's rules serve every touchpoint of a batch)."""
    if "call" not in rules.quiet_hours:
        return rules
    if _LEFT_OUT and _LEFT_OUT[0][0] is rules:
        return _LEFT_OUT[0][1]
    quiet = {c: span for c, span in rules.quiet_hours.items() if c != "call"}
    left_out = msgspec.structs.replace(rules, quiet_hours=quiet)
    _LEFT_OUT[:] = [(rules, left_out)]
    return left_out


def calls_quiet_until(
    catalogue: OfferCatalogue, features: CustomerFeatures, now: datetime
) -> str | None:
    """When the call channel's quiet hours that ``now`` falls in end for the customer
    (``"HH:MM"``, their local time), ``None`` out of them."""
    return catalogue.contact_policy.quiet_until("call", now, features.timezone)


def calls_capped(catalogue: OfferCatalogue, features: CustomerFeatures) -> CallsCapped | None:
    """The call channel's caps the customer reached, as the contact policy counts them
    before Moments reaches out by call (the channel's daily and weekly caps, and the
    outbound channels' together: :func:`agents.contact_policy.fatigue`), so that a call
    back is not asked for past them; ``None`` within them. Of several caps reached, the
    one that holds the longest is named: a weekly cap outlasts the day, and a cap of 0
    closes the channel. Only when a daily cap alone holds may the customer be called
    from their next day: the week then holds less than it does now.

    >>> from feature_store import ContactHistory
    >>> rules = ContactRules(daily_caps={"call": 1}, outbound_weekly_cap=3)
    >>> catalogue = OfferCatalogue(version="1", offers=[], contact_policy=rules)
    >>> def capped(today: int, week: int) -> CallsCapped | None:
    ...     seen = ContactHistory(shown_today={"call": today}, shown_7d={"email": week})
    ...     return calls_capped(catalogue, CustomerFeatures(contact=seen))
    >>> capped(0, 2) is None
    True
    >>> capped(1, 2)
    CallsCapped(reason='suppressed:fatigue:call:day', lifts_tomorrow=True)
    >>> capped(1, 3)
    CallsCapped(reason='suppressed:fatigue:outbound:week', lifts_tomorrow=False)
    """
    rules, contact = catalogue.contact_policy, features.contact
    reached = fatigue("call", contact, rules)
    if reached is None:
        return None
    # today's counts left out: what holds beyond today (a weekly cap, or a cap of 0)
    beyond = fatigue("call", msgspec.structs.replace(contact, shown_today={}), rules)
    return CallsCapped(beyond or reached, lifts_tomorrow=beyond is None)
