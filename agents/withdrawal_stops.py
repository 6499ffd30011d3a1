"""A withdrawal of consent to calls applied out of band still stops the call-backs (pure).

A withdrawal dated too far ahead (dead-lettered, :mod:`agents.withdrawals_ahead`) or
dated a placeholder time (expired, :mod:`agents.withdrawals_undated`) has its withdrawal
fields applied all the same, but nothing was decided on it: a save-desk or retention
call-back already on a screen stayed live, and an agent could call back a customer who
had said not to. One that withdraws consent to calls (or to everything) is now decided
on for that alone, a "stop": dated as its withdrawal was stamped, it raises the
``do_not_call`` that :func:`agents.interventions.interventions_for` gives it, and nothing
else (no offer, no risk watch, no other alert). The alert's id is the one the touchpoint
would raise (kind, customer, event id), and it stops the open call-backs
(:func:`agents.alert_actions.call_back_open`): a later re-drive of the letter raises no
second.

>>> from datetime import UTC, datetime, timedelta
>>> from feature_store.facts import ts_ms
>>> from feature_store.withdrawals import withdrawal_fact
>>> from schemas import Consent
>>> at = datetime(2026, 12, 6, 12, tzinfo=UTC)
>>> ahead = Consent(event_id="e", customer_id="c", ts=at + timedelta(hours=1),
...                 channel="call", granted=False)
>>> call_stop(ahead, [withdrawal_fact(ahead, ts_ms(at))]).ts == at
True
>>> email = Consent(event_id="m", customer_id="c", ts=at, channel="email", granted=False)
>>> call_stop(email, [withdrawal_fact(email, ts_ms(at))]) is None
True
>>> call_stop(ahead, []) is None  # nothing was applied of it
True
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import msgspec

from agents.interventions import InterventionRules, interventions_for
from feature_store import CustomerFeatures
from feature_store.facts import EPOCH, Fact
from schemas import Consent, Intervention, TouchpointEvent


def call_stop(event: TouchpointEvent, withdrawn: Sequence[Fact]) -> TouchpointEvent | None:
    """``event`` dated as its withdrawal was stamped (``withdrawn``: the facts
    :func:`~agents.withdrawals_ahead.withdrawal_now` or
    :func:`~agents.withdrawals_undated.withdrawal_received` made of it), when it withdraws
    consent to calls; ``None`` otherwise, and when nothing of it was applied."""
    match event:
        case Consent(channel="call" | "all", granted=False) if withdrawn:
            stamp = EPOCH + timedelta(milliseconds=withdrawn[0].ts_ms)
            return msgspec.structs.replace(event, ts=stamp)
    return None


def do_not_call_for(
    stop: TouchpointEvent,
    features: CustomerFeatures | None,
    now: datetime,
    rules: InterventionRules,
    raised_lately: Sequence[Intervention],
    subject: str,
) -> list[Intervention]:
    """The ``do_not_call`` a :func:`call_stop` raises (none when no call-back is open, or
    a grant in force overrides it): the only alert it may raise."""
    alerts = interventions_for(
        stop, features, now, rules, raised_lately=raised_lately, subject=subject
    )
    return [a for a in alerts if a.kind == "do_not_call"]
