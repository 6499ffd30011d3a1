"""Alert actions: what an alert asks the contact centre to do, and on what terms it asks
for a call back.

Each kind has its suggested action, which offers the customer nothing by hand when they
are in the offers' control group or withdrew their consent to calls, and suggests the
retention offer only when the contact policy would make it on a call now.

A call back is asked for only as the contact policy would call the customer itself: in
the call channel's quiet hours the alert says when to call (:data:`QUIET_CALLS`), and
once the customer reached the call channel's caps (its own, or the outbound channels'
together) it says not to call (:func:`calls_capped_action`). Raising the alert is not
counted as a contact on the customer's ledger: it asks an agent to call, who may not
(the caps or quiet hours hold, the customer calls first, the agent closes it), and the
caps count the offers a customer was made, as a CRM's contact history records contacts
made, not tasks opened. Counting the alert would spend the customer's call caps on a
call that may never happen, and keep Moments' own offers from them. A call back stays
open a day (:data:`CALL_BACK_OPEN_S`): a withdrawal of consent to calls within it raises
the word not to call (:func:`call_back_stopped`). Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

from feature_store import CustomerFeatures
from schemas import Consent, Intervention, TouchpointEvent
from schemas.timezones import is_timezone

ACTIONS = {
    "save_desk": "Route to the save desk: ask what would make them stay before processing "
    "any cancellation.",
    "retention_call": "Acknowledge their recent experience first; offer the service-recovery "
    "voucher if it fits.",
    "vip_attention": "A high-value customer: greet by name, skip the script, resolve first time.",
    "service_recovery": "Within the hour: apologise, fix the issue, and follow up where they "
    "raised it.",
    "win_back": "Welcome them back and ask what brought them; mention what is new for them.",
    "do_not_call": "Do not call them: they withdrew their consent to calls. Close any "
    "call-back task raised for them.",
}
# The alerts that may leave the contact centre a call to make: a call-back, or one an
# agent promised while the customer was on the line (a service recovery is answered
# where they spoke up).
CALL_BACKS = ("retention_call", "save_desk", "vip_attention", "win_back")
CALL_BACK_OPEN_S = 24 * 3600  # how long such a call may still be made: a day
# the offer a retention call suggests (see retention_action), as the catalogue names it
RETENTION_OFFER = "service-recovery-voucher"
# the reason an alert that asks for a call back gets while the call channel is in its
# quiet hours for the customer (see agents.interventions.interventions_for)
QUIET_CALLS = "quiet_hours:call"


class CallsCapped(NamedTuple):
    """The call channel's contact caps the customer reached, as the contact policy
    counts them for its own decisions (see :func:`agents.alert_terms.calls_capped`)."""

    reason: str  # the policy's reason code, e.g. "suppressed:fatigue:call:day"
    lifts_tomorrow: bool  # only a daily cap holds: they may be called from their next day

    @property
    def alert_reason(self) -> str:
        """The reason an alert gets: the policy's code, without ``suppressed:`` (the
        alert is raised), as :data:`QUIET_CALLS` is.

        >>> CallsCapped("suppressed:fatigue:outbound:week", False).alert_reason
        'fatigue:outbound:week'
        """
        return self.reason.removeprefix("suppressed:")


# for a customer in the offers' control group, who gets no offers, by hand either: the
# measured lift of the offers would be blurred
HELD_OUT_ACTIONS = {
    "retention_call": "Acknowledge their recent experience first; make no offer (the "
    "customer is in the offers' control group).",
    "win_back": "Welcome them back and ask what brought them; make no offer (the customer "
    "is in the offers' control group).",
}
# for a customer who withdrew their consent to calls: Moments makes them no offer on a
# call, even one they made, and neither does the agent
NO_CALL_OFFER_ACTIONS = {
    "retention_call": "Acknowledge their recent experience first; make no offer (the "
    "customer withdrew their consent to offers by call).",
    "win_back": "Welcome them back and ask what brought them; make no offer (the customer "
    "withdrew their consent to offers by call).",
}


_REFUSED = {  # why the contact policy refuses an offer, by the start of its reason code
    "suppressed:budget:": "its budget for today is spent",
    "suppressed:cooldown:": "it was offered to them lately",
    "suppressed:cap:": "they were offered it as often as a week allows",
    "suppressed:accepted:": "they accepted it lately",
    "suppressed:fatigue:call:day": "they had as many contacts by call as a day allows",
    "suppressed:fatigue:call:week": "they had as many contacts by call as a week allows",
    "suppressed:fatigue:outbound:day": "they had as many contacts by email, text and call as "
    "a day allows",
    "suppressed:fatigue:outbound:week": "they had as many contacts by email, text and call "
    "as a week allows",
    "not_in_catalogue:": "it is not in the catalogue",
    "not_available:": "it is not on offer today",
    "not_eligible:": "it is not for customers like them",
}


def retention_action(refused: str | None) -> str:
    """A retention call's suggested action when the contact policy makes the customer
    the :data:`RETENTION_OFFER` on a call (``refused`` ``None``), or refuses it for the
    reason ``refused`` (a code as its decisions give, or ``not_in_catalogue:``,
    ``not_available:``, ``not_eligible:`` and the offer): then no offer, and why.

    >>> retention_action("suppressed:budget:service-recovery-voucher").split(": ")[1]
    'its budget for today is spent).'
    >>> retention_action("suppressed:accepted:service-recovery-voucher").split(": ")[1]
    'they accepted it lately).'
    """
    if refused is None:
        return ACTIONS["retention_call"]
    why = next((w for start, w in _REFUSED.items() if refused.startswith(start)), refused)
    return ("Acknowledge their recent experience first; make no offer (the service-recovery "
            f"voucher is not for them now: {why}).")  # fmt: skip


def after_quiet_hours(action: str, until: str, timezone: str | None) -> str:
    """``action`` for a call back that must wait for the call channel's quiet hours to
    end at ``until`` (``"HH:MM"``), read in the customer's ``timezone`` when it is known
    (else in the catalogue's, whose name the contact centre knows).

    >>> after_quiet_hours("Route to the save desk.", "09:00", "Australia/Sydney")
    'Call back after 09:00 their time: route to the save desk.'
    >>> after_quiet_hours("Route to the save desk.", "09:00", None)[:40]
    "Call back after 09:00 (the business's ti"
    """
    whose = "their time" if timezone is not None and is_timezone(timezone) else (
        "(the business's timezone; theirs is not known)")  # fmt: skip
    return f"Call back after {until} {whose}: {action[:1].lower()}{action[1:]}"


def calls_capped_action(action: str, capped: CallsCapped, timezone: str | None) -> str:
    """``action`` for a call back the call channel's caps hold: not to call, why, and,
    when only a daily cap holds, from when they may be called (their next day, counted
    in their ``timezone`` when it is known, else in the catalogue's). What to do should
    they call in follows.

    >>> day = CallsCapped("suppressed:fatigue:call:day", lifts_tomorrow=True)
    >>> calls_capped_action("Route to the save desk.", day, "Europe/Paris")
    'Do not call them back before tomorrow, their time: the call caps are reached (they \
had as many contacts by call as a day allows). Should they call in: route to the save desk.'
    >>> week = CallsCapped("suppressed:fatigue:outbound:week", lifts_tomorrow=False)
    >>> calls_capped_action("Route to the save desk.", week, None).split(" (")[0]
    'Do not call them back: the call caps are reached'
    """
    why = next((w for start, w in _REFUSED.items() if capped.reason.startswith(start)),
               capped.reason)  # fmt: skip
    when = ""
    if capped.lifts_tomorrow:
        known = timezone is not None and is_timezone(timezone)
        when = " before tomorrow, " + ("their time" if known else (
            "in the business's timezone (theirs is not known)"))  # fmt: skip
    return (f"Do not call them back{when}: the call caps are reached ({why}). "
            f"Should they call in: {action[:1].lower()}{action[1:]}")  # fmt: skip


def call_back_open(
    features: CustomerFeatures, now: datetime, raised_lately: Sequence[Intervention] = ()
) -> bool:
    """Whether an alert raised within the last day may have left a call to make that no
    do-not-call has stopped since; ``raised_lately``: alerts raised for the customer and
    not recorded yet (earlier in the same batch), which count as recorded ones do.

    >>> from datetime import UTC
    >>> from feature_store.features import ContactHistory
    >>> at = datetime(2026, 11, 23, tzinfo=UTC)
    >>> def raised(**last: datetime) -> CustomerFeatures:
    ...     return CustomerFeatures(contact=ContactHistory(last_intervention=last))
    >>> call_back_open(raised(retention_call=at - timedelta(hours=3)), at)
    True
    >>> call_back_open(raised(retention_call=at - timedelta(hours=25)), at)
    False
    >>> call_back_open(raised(retention_call=at - timedelta(hours=3),
    ...                       do_not_call=at - timedelta(hours=1)), at)  # stopped already
    False
    """
    last = dict(features.contact.last_intervention)
    for alert in raised_lately:
        if alert.kind not in last or alert.ts > last[alert.kind]:
            last[alert.kind] = alert.ts
    stopped = last.get("do_not_call")
    return any(
        (raised := last.get(kind)) is not None
        and now - raised < timedelta(seconds=CALL_BACK_OPEN_S)
        and (stopped is None or raised > stopped)
        for kind in CALL_BACKS
    )


def call_back_stopped(
    event: TouchpointEvent,
    features: CustomerFeatures,
    now: datetime,
    raised_lately: Sequence[Intervention],
) -> bool:
    """Whether ``event`` withdraws consent to calls while a call-back is open, and is in
    force (not one read late, dated before a grant that now holds)."""
    return (
        isinstance(event, Consent)
        and event.channel in ("call", "all")
        and not event.granted
        and not features.consents_to("call")
        and call_back_open(features, now, raised_lately)
    )
