"""Where a churn-risk crossing is raised (pure).

A customer's risk is scored once a batch, as of their newest touchpoint in it
(:func:`agents.risk_watch.watch_risk`). The retention call a crossing asks for is raised
at the customer's inbound call of the batch when they are on the line (one still
within the alerts' age, :attr:`~agents.interventions.InterventionRules.max_age_s`),
so that it reaches the agent speaking to them, in the call's queue, rather than as a
call-back for later (one they may have said not to make); otherwise at that newest
touchpoint. A call the batch shows ended (an inbound call's ``ended`` record of the
customer, as late as it or later) is over: they hung up. Whether the customer is on the
line where the crossing is raised decides its consent, caps, quiet hours and queue
(:func:`agents.interventions.interventions_for`). Its id names the crossing
(:func:`agents.alert_ids.crossing_id_for`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from agents.interventions import InterventionRules, on_the_line
from schemas import Call, TouchpointEvent


@dataclass(frozen=True, slots=True)
class RiskWatchAt:
    """Where a customer's churn risk is watched in a batch."""

    scored_at: TouchpointEvent  # their newest touchpoint: the risk is scored as of it
    raised_at: str  # the touchpoint whose decision scores it and raises its crossing
    on_the_line: bool = False  # the customer is on the line there (see on_the_line_still)


def hung_up(call: TouchpointEvent, batch: Sequence[TouchpointEvent]) -> bool:
    """Whether ``batch`` (the customer's touchpoints applied with it) shows ``call`` over:
    it holds an inbound call's ``ended`` record as late as the call or later (calls
    carry no id of their own to match them by).

    >>> from datetime import UTC, timedelta
    >>> from schemas import Call
    >>> at = datetime(2026, 11, 23, 12, tzinfo=UTC)
    >>> def call(status: str, ts: datetime) -> Call:
    ...     return Call(event_id=status, customer_id="x", ts=ts, status=status,
    ...                 direction="inbound", reason="billing")
    >>> started = call("started", at)
    >>> hung_up(started, [started, call("ended", at + timedelta(minutes=3))])
    True
    >>> hung_up(started, [call("ended", at - timedelta(hours=1)), started])  # an earlier call
    False
    """
    return any(
        isinstance(e, Call) and e.direction == "inbound" and e.status == "ended"
        and e.ts >= call.ts
        for e in batch
    )  # fmt: skip


def on_the_line_still(
    event: TouchpointEvent,
    now: datetime,
    rules: InterventionRules,
    sent: datetime | None,
    batch: Sequence[TouchpointEvent] = (),
) -> bool:
    """Whether ``event`` is an inbound call young enough for its alerts to be raised (as
    :func:`agents.interventions.too_late` counts an alert's age: from the later of its
    time and ``sent``, when it reached Kafka), and not shown over by ``batch`` (see
    :func:`hung_up`).

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
    if not on_the_line(event) or hung_up(event, batch):
        return False
    if rules.max_age_s <= 0:
        return True
    began = event.ts if sent is None else max(event.ts, sent)
    return (now - began).total_seconds() <= rules.max_age_s


def risk_watch_at(
    touchpoints: Sequence[tuple[TouchpointEvent, datetime | None]],
    now: datetime,
    rules: InterventionRules,
    batch: Sequence[TouchpointEvent] = (),
) -> RiskWatchAt:
    """Where the risk of a customer with ``touchpoints`` to decide in a batch (each with
    when it reached Kafka, if known; at least one) is watched: scored at the newest (by
    time: a late call record read last is not their newest), raised at their newest
    inbound call still on the line, else there too. ``batch``: all their touchpoints
    applied in it (an ``ended`` call record is not decided on, but ends a call)."""
    newest = touchpoints[0][0]
    for event, _ in touchpoints:
        if event.ts >= newest.ts:
            newest = event
    calls = [e for e, sent in touchpoints if on_the_line_still(e, now, rules, sent, batch)]
    if calls:
        return RiskWatchAt(newest, max(calls, key=lambda e: e.ts).event_id, on_the_line=True)
    return RiskWatchAt(newest, newest.event_id)
