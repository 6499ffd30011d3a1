"""Customers coming back: a lapsed customer's return, welcomed once with a win-back,
and the calls owed to a customer the call caps held back.

A return is noticed at its first touchpoint that can raise an alert; a churn-risk
crossing once, as its band is stored. So a win-back or a crossing's retention call that
said not to call (the call caps reached) stays owed, and is asked for at the customer's
next touchpoint that may raise an alert once they may be called. Pure.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple

from feature_store import CustomerFeatures
from feature_store.features import RecentTouchpoint
from schemas import TouchpointEvent

if TYPE_CHECKING:
    from agents.interventions import InterventionRules

# the reason of a win-back asked for again: the last said not to call (see win_back_owed)
WIN_BACK_OWED = "win_back_owed:calls_allowed_again"
# the reason of a crossing's retention call asked for again (see retention_owed)
RETENTION_OWED = "retention_owed:calls_allowed_again"

# The types of the recent touchpoints that always could raise an alert (see
# agents.interventions.might_intervene): a return that reached one of them was noticed
# then. The others (an email opened, a survey answer, a consent, a call or a mention,
# which the recent list does not say was inbound or negative) are part of a lapsed
# customer's return, not of the lapse; whether an alert welcomed them back then is in
# their contact history.
NOTICED = frozenset({"web_click", "purchase"})


class Return(NamedTuple):
    """A lapsed customer's return."""

    away: timedelta  # how long they had been away
    began: datetime  # when: the first touchpoint of the return


def returned_after(
    event: TouchpointEvent, recent: list[RecentTouchpoint], lapse: timedelta
) -> Return | None:
    """The customer's return, if they had been away at least ``lapse`` when they came
    back with ``event`` or with the touchpoints just before it that may not have raised
    an alert (the email they opened on the way back, before the click it brought): the
    gap before the first touchpoint of their return. ``recent``: newest first, ``event``
    in it or not.

    >>> from datetime import UTC
    >>> from schemas import WebClick
    >>> at = datetime(2026, 11, 23, tzinfo=UTC)
    >>> click = WebClick(event_id="w", customer_id="c", ts=at, page="/")
    >>> opened = RecentTouchpoint(at - timedelta(seconds=30), "email", "e")
    >>> bought = RecentTouchpoint(at - timedelta(days=120), "purchase", "p")
    >>> returned_after(click, [opened, bought], timedelta(days=90)).away
    datetime.timedelta(days=119, seconds=86370)
    >>> visited = RecentTouchpoint(at - timedelta(seconds=30), "web_click", "v")
    >>> returned_after(click, [visited, bought], timedelta(days=90)) is None
    True
    """
    newer = event.ts
    # the event itself is in the list too (at millisecond precision)
    for r in (r for r in recent if r.ts < event.ts and r.event_id != event.event_id):
        if newer - r.ts >= lapse:
            return Return(newer - r.ts, newer)
        if r.type in NOTICED:  # their return, if any, was noticed then
            return None
        newer = r.ts
    return None


def welcomed_back(features: CustomerFeatures, back: Return) -> bool:
    """Whether a win-back alert was raised for this return already (at a call or a
    mention that began it, say): one per return."""
    last = features.contact.last_intervention.get("win_back")
    return last is not None and last >= back.began


def win_back_owed(
    features: CustomerFeatures, now: datetime, rules: InterventionRules, capped: bool
) -> bool:
    """Whether the customer's last win-back said not to call (the call caps reached),
    within its cool-down, and they may be called now (``capped`` False): a return is
    noticed once, at its first touchpoints, so the call it asked for is still owed, and
    is asked for at their next touchpoint (reason :data:`WIN_BACK_OWED`).

    >>> from datetime import UTC
    >>> from agents.interventions import InterventionRules
    >>> from feature_store.features import ContactHistory
    >>> at = datetime(2026, 12, 7, tzinfo=UTC)
    >>> def said_not_to_call(days: int) -> CustomerFeatures:
    ...     return CustomerFeatures(contact=ContactHistory(
    ...         last_intervention={"win_back": at - timedelta(days=days)},
    ...         last_intervention_capped=("win_back",)))
    >>> rules = InterventionRules()
    >>> [win_back_owed(said_not_to_call(3), at, rules, capped) for capped in (True, False)]
    [False, True]
    >>> win_back_owed(said_not_to_call(31), at, rules, False)  # past its cool-down
    False
    """
    last = features.contact.last_intervention.get("win_back")
    cooldown_s = rules.cooldown_s.get("win_back")
    return (
        not capped
        and last is not None
        and "win_back" in features.contact.last_intervention_capped
        and cooldown_s is not None
        and now - last < timedelta(seconds=cooldown_s)
    )


def retention_owed(features: CustomerFeatures, capped: bool, risk_high: bool) -> bool:
    """Whether the customer's last retention call said not to call (the call caps
    reached), their churn risk is high still (``risk_high``: its band), and they may be
    called now (``capped`` False): a crossing is noticed once, and the band stays high
    until the risk falls, so the call it asked for is still owed, and is asked for at
    their next touchpoint that may raise an alert (reason :data:`RETENTION_OWED`).

    >>> from feature_store.features import ContactHistory
    >>> said_not_to_call = CustomerFeatures(contact=ContactHistory(
    ...     last_intervention_capped=("retention_call",)))
    >>> [retention_owed(said_not_to_call, capped, True) for capped in (True, False)]
    [False, True]
    >>> retention_owed(said_not_to_call, False, risk_high=False)  # the risk fell since
    False
    """
    return (
        not capped and risk_high and "retention_call" in features.contact.last_intervention_capped
    )
