"""Where a churn-risk crossing is raised (pure).

A customer's risk is scored once a batch, as of their newest touchpoint in it
(:func:`agents.risk_watch.watch_risk`). The retention call a crossing asks for is raised
at the customer's inbound call of the batch when they are on the line (one still
within the alerts' age, :attr:`~agents.interventions.InterventionRules.max_age_s`),
so that it reaches the agent speaking to them, in the call's queue, rather than as a
call-back for later (one they may have said not to make); otherwise at that newest
touchpoint. Its id names the crossing (:func:`agents.interventions.crossing_id_for`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from agents.interventions import InterventionRules, on_the_line
from schemas import TouchpointEvent


@dataclass(frozen=True, slots=True)
class RiskWatchAt:
    """Where a customer's churn risk is watched in a batch."""

    scored_at: TouchpointEvent  # their newest touchpoint: the risk is scored as of it
    raised_at: str  # the touchpoint whose decision scores it and raises its crossing


def on_the_line_still(
    event: TouchpointEvent, now: datetime, rules: InterventionRules, sent: datetime | None
) -> bool:
    """Whether ``event`` is an inbound call young enough for its alerts to be raised (as
    :func:`agents.interventions.too_late` counts an alert's age: from the later of its
    time and ``sent``, when it reached Kafka).

    >>> from datetime import UTC, timedelta
    >>> from schemas import Call
    >>> at = datetime(2026, 11, 23, 12, tzinfo=UTC)
    >>> call = Call(event_id="c", customer_id="x", ts=at, status="started",
    ...             direction="inbound", reason="billing")
    >>> rules = InterventionRules(max_age_s=3600)
    >>> on_the_line_still(call, at + timedelta(minutes=5), rules, None)
    True
    >>> on_the_line_still(call, at + timedelta(hours=2), rules, None)
    False
    >>> on_the_line_still(call, at + timedelta(hours=2), rules, at + timedelta(hours=1.5))
    True
    """
    if not on_the_line(event):
        return False
    if rules.max_age_s <= 0:
        return True
    began = event.ts if sent is None else max(event.ts, sent)
    return (now - began).total_seconds() <= rules.max_age_s


def risk_watch_at(
    touchpoints: Sequence[tuple[TouchpointEvent, datetime | None]],
    now: datetime,
    rules: InterventionRules,
) -> RiskWatchAt:
    """Where the risk of a customer with ``touchpoints`` in a batch (each with when it
    reached Kafka, if known; at least one) is watched: scored at the newest (by time: a
    late call record read last is not their newest), raised at their newest inbound
    call still on the line, else there too."""
    newest = touchpoints[0][0]
    for event, _ in touchpoints:
        if event.ts >= newest.ts:
            newest = event
    calls = [e for e, sent in touchpoints if on_the_line_still(e, now, rules, sent)]
    raised_at = max(calls, key=lambda e: e.ts) if calls else newest
    return RiskWatchAt(newest, raised_at.event_id)
