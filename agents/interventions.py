"""Interventions: which touchpoints should reach a contact-centre screen, and how urgently.

Pure: a touchpoint and the customer's features in, zero or more :class:`Intervention`s
out. Every kind has a cool-down, read from the customer's contact history, so one
customer never floods a screen. A cool-down holds back only alerts of its kind that are
no more urgent than the one that started it: a customer on the line is not kept from
the agent by the call-back task raised minutes before. Nor does an alert that said not to
call (the caps below) hold back its kind's call back once the customer may be called.

A customer who withdraws their consent to calls within a day of an alert that may have
left a call to make gets a ``do_not_call`` alert, for every screen: once per such alert
rather than by a cool-down.

A call back is asked for only as the contact policy would call the customer itself: in
the call channel's quiet hours the alert says when to call (:data:`QUIET_CALLS`), and
once the customer reached the call channel's caps (its own, or the outbound channels'
together) it says not to call (:func:`calls_capped_action`). Raising the alert is not
counted as a contact on the customer's ledger: it asks an agent to call, who may not
(the caps or quiet hours hold, the customer calls first, the agent closes it), and the
caps count the offers a customer was made, as a CRM's contact history records contacts
made, not tasks opened. Counting the alert would spend the customer's call caps on a
call that may never happen, and keep Moments' own offers from them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

import msgspec

from agents.cancellation_pages import cancellation_page
from feature_store import CustomerFeatures
from feature_store.facts import ts_ms
from feature_store.features import RecentTouchpoint
from schemas import (
    Call,
    Consent,
    Intervention,
    InterventionContext,
    Purchase,
    SocialMention,
    TouchpointEvent,
    WebClick,
)
from schemas.decisions import Priority
from schemas.timezones import is_timezone
from schemas.touchpoints import queue_named

NAMESPACE = uuid.UUID("2b0c5b8e-0f4e-4d55-b0a8-8f5f3c1d9e21")  # of the ids before (by event)
# the ids named per customer (a name of this namespace is never one of the older form's)
CUSTOMER_NAMESPACE = uuid.uuid5(NAMESPACE, "per-customer")
HOUR = 3600
RISK_CROSSED = "risk_crossed:"  # the reason of a retention call raised by a risk crossing
# the reason of a win-back asked for again: the last said not to call (see win_back_owed)
WIN_BACK_OWED = "win_back_owed:calls_allowed_again"
# the reason of a crossing's retention call asked for again (see retention_owed)
RETENTION_OWED = "retention_owed:calls_allowed_again"

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
CALL_BACK_OPEN_S = 24 * HOUR  # how long such a call may still be made
# the offer a retention call suggests (see retention_action), as the catalogue names it
RETENTION_OFFER = "service-recovery-voucher"
# the reason an alert that asks for a call back gets while the call channel is in its
# quiet hours for the customer (see interventions_for)
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


@dataclass(frozen=True, slots=True)
class InterventionRules:
    high_value: float = 500.0
    negative_sentiment: float = -0.5
    wide_reach: int = 10_000
    repeat_complaints: int = 3
    lapse_days: int = 90
    max_age_s: float = HOUR  # the oldest touchpoint that still raises an alert
    currency: str | None = None  # what customer value counts in, shown beside it
    cooldown_s: dict[str, int] = field(
        default_factory=lambda: {
            "save_desk": 6 * HOUR,
            "retention_call": 24 * HOUR,
            "vip_attention": 24 * HOUR,
            "service_recovery": 24 * HOUR,
            "win_back": 30 * 24 * HOUR,
        }
    )


_REFUSED = {  # why the contact policy refuses an offer, by the start of its reason code
    "suppressed:budget:": "its budget for today is spent",
    "suppressed:cooldown:": "it was offered to them lately",
    "suppressed:cap:": "they were offered it as often as a week allows",
    "suppressed:accepted:": "they accepted it lately",
    "suppressed:fatigue:call:day": "they had as many offers by call as a day allows",
    "suppressed:fatigue:call:week": "they had as many offers by call as a week allows",
    "suppressed:fatigue:outbound:day": "they had as many offers by email, text and call as "
    "a day allows",
    "suppressed:fatigue:outbound:week": "they had as many offers by email, text and call "
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
had as many offers by call as a day allows). Should they call in: route to the save desk.'
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


def retention_call_possible(
    event: TouchpointEvent, features: CustomerFeatures, risk_crossed: bool, risk_high: bool
) -> bool:
    """Whether :func:`interventions_for` may raise a retention call at ``event`` (an
    at-risk customer on the line, a risk crossing, or a crossing's call still owed, see
    :func:`retention_owed`): only then is its offer screened."""
    return (
        risk_crossed
        or (on_the_line(event) and features.segment == "at_risk")
        or retention_owed(features, False, risk_high)
    )


def might_intervene(event: TouchpointEvent) -> bool:
    """A cheap first look: only these touchpoints can raise an intervention of their own
    (a lapsed customer is noticed when they come back to browse, call or buy, see
    :func:`returned_after`); a churn-risk crossing raises one from any touchpoint."""
    match event:
        case Call(status="started", direction="inbound") | WebClick() | Purchase():
            return True
        case SocialMention(sentiment=s):
            return s < 0
        case Consent(channel="call" | "all", granted=False):
            return True  # a call-back raised before may still be on a screen
    return False


# The types of the recent touchpoints that always could raise an alert (see
# might_intervene): a return that reached one of them was noticed then. The others
# (an email opened, a survey answer, a consent, a call or a mention, which the recent
# list does not say was inbound or negative) are part of a lapsed customer's return, not
# of the lapse; whether an alert welcomed them back then is in their contact history.
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


def on_the_line(event: TouchpointEvent) -> bool:
    """Whether the customer is talking to the contact centre now (an inbound call): an
    alert then reaches them without anyone calling them."""
    return isinstance(event, Call) and event.direction == "inbound" and event.status == "started"


def withheld(alert: Intervention) -> Intervention:
    """The alert as the hold-out group keeps it: recorded for measuring, never shown."""
    return msgspec.structs.replace(alert, control=True, reasons=[*alert.reasons, "control_group"])


def too_late(alert: Intervention, rules: InterventionRules, sent: datetime | None = None) -> bool:
    """Whether ``alert`` comes too late to raise: its touchpoint happened more than
    ``rules.max_age_s`` before the alert was decided (the touchpoint was re-driven from
    the dead letters, or read by a worker catching up after an outage). The customer on
    the line then has long hung up, and has left the page. A call-back for a churn risk
    that crossed its threshold is not about the moment, nor is the word not to call a
    customer: they are never too late. With
    ``sent`` (when the touchpoint reached Kafka, for one not re-driven), the later of the
    two times counts: a source whose clock is behind, or that writes its local time as
    UTC, does not have every alert taken for a late one. ``max_age_s`` 0: never too late.

    >>> from datetime import UTC
    >>> at = datetime(2026, 11, 23, tzinfo=UTC)
    >>> alert = Intervention(intervention_id="i", customer_id="c", ts=at, kind="save_desk",
    ...     priority=1, trigger_event_id="t", reasons=[], suggested_action="",
    ...     trigger_ts=at - timedelta(hours=2))
    >>> too_late(alert, InterventionRules()), too_late(alert, InterventionRules(max_age_s=3 * HOUR))
    (True, False)
    >>> too_late(msgspec.structs.replace(alert, reasons=["risk_crossed:0.81"]), InterventionRules())
    False
    >>> too_late(alert, InterventionRules(), sent=at - timedelta(minutes=1))  # a clock behind
    False
    """
    if rules.max_age_s <= 0 or alert.trigger_ts is None:
        return False
    if alert.kind == "do_not_call" or any(r.startswith(RISK_CROSSED) for r in alert.reasons):
        return False
    began = alert.trigger_ts if sent is None else max(alert.trigger_ts, sent)
    return (alert.ts - began).total_seconds() > rules.max_age_s


def intervention_id_for(kind: str, trigger_event_id: str, subject: str) -> str:
    """Deterministic, so a replayed event raises its alert under the same id; one per
    customer (``subject``: whose, by their keyed hash), as decision ids are
    (:func:`agents.moments.decision_id_for`).

    >>> intervention_id_for("save_desk", "e-1", "ab12") == intervention_id_for(
    ...     "save_desk", "e-1", "cd34")
    False
    """
    name = f"{kind}:{len(subject)}:{subject}:{trigger_event_id}"
    return str(uuid.uuid5(CUSTOMER_NAMESPACE, name))


def crossing_id_for(subject: str, features: CustomerFeatures) -> str:
    """The id of the retention call a churn-risk crossing raises of its own: named after
    the crossing, not the touchpoint it is raised at, so that a batch read again before it
    was confirmed (a worker stopped after Kafka took its alerts), ending at another
    touchpoint, raises it under the same id. A crossing is named by when the customer's
    risk band was last stored (it stores the band anew: the next crossing is named
    otherwise), or, for a customer with no band yet, by when they were first seen.

    >>> from datetime import UTC
    >>> low = CustomerFeatures(risk_band="low", risk_band_ms=1_700_000_000_000)
    >>> crossing_id_for("ab12", low) == crossing_id_for("ab12", low)
    True
    >>> later = msgspec.structs.replace(low, risk_band_ms=1_700_000_060_000)
    >>> crossing_id_for("ab12", low) == crossing_id_for("ab12", later)
    False
    >>> first = CustomerFeatures(first_seen=datetime(2026, 11, 23, tzinfo=UTC))
    >>> crossing_id_for("ab12", first) == crossing_id_for("cd34", first)
    False
    """
    if features.risk_band_ms is not None:
        since = f"band:{features.risk_band_ms}"
    elif features.first_seen is not None:
        since = f"first:{ts_ms(features.first_seen)}"
    else:
        since = "first"
    # never one of intervention_id_for's names: those have the subject's length here
    name = f"retention_call:crossing:{len(subject)}:{subject}:{since}"
    return str(uuid.uuid5(CUSTOMER_NAMESPACE, name))


def most_urgent(alerts: Iterable[Intervention]) -> list[Intervention]:
    """Alerts decided on the same features (one batch): one per customer and kind, the
    most urgent (of equals, the first), in the order they were raised. The alerts a
    cool-down would have held back, had the others been recorded first, are the ones
    left out; the churn-risk crossing one of them tells of (reason
    :data:`RISK_CROSSED`) is told by the one kept (its band is stored all the same).

    >>> from datetime import UTC
    >>> at = datetime(2026, 11, 23, tzinfo=UTC)
    >>> def alert(trigger: str, priority: Priority) -> Intervention:
    ...     return Intervention(intervention_id=trigger, customer_id="c", ts=at,
    ...         kind="save_desk", priority=priority, trigger_event_id=trigger, reasons=[],
    ...         suggested_action="")
    >>> [a.trigger_event_id for a in most_urgent([alert("page", 2), alert("call", 1),
    ...                                           alert("call-again", 1)])]
    ['call']
    >>> crossed = msgspec.structs.replace(alert("call-again", 1), reasons=["risk_crossed:0.9"])
    >>> [a.reasons for a in most_urgent([alert("call", 1), crossed])]
    [['risk_crossed:0.9']]
    """
    kept: dict[tuple[str, str], Intervention] = {}
    for alert in alerts:
        key = (alert.customer_id, alert.kind)
        found = kept.get(key)
        if found is None or alert.priority < found.priority:
            kept.pop(key, None)  # the newer, more urgent one takes its place in the order
            kept[key] = alert if found is None else _telling_crossing(alert, found)
        else:
            kept[key] = _telling_crossing(found, alert)
    return list(kept.values())


def _telling_crossing(kept: Intervention, dropped: Intervention) -> Intervention:
    """``kept``, telling of the risk crossing ``dropped`` told of, if any."""
    crossed = [r for r in dropped.reasons if r.startswith(RISK_CROSSED)]
    if not crossed or any(r.startswith(RISK_CROSSED) for r in kept.reasons):
        return kept
    return msgspec.structs.replace(kept, reasons=[*kept.reasons, *crossed])


def cooling_down(
    kind: str,
    priority: int,
    features: CustomerFeatures,
    now: datetime,
    rules: InterventionRules,
    calls_capped: bool = True,
) -> bool:
    """Whether an alert of ``kind`` at ``priority`` is held back by the cool-down the
    customer's last alert of that kind started: one no more urgent (the same priority
    number or a higher one) is; a more urgent one is raised, and starts its own. A last
    alert whose priority is not known (stored before priorities were) counts as the most
    urgent. A kind with no cool-down (a do-not-call, raised once per call-back it stops)
    is never held back. A last alert raised past the call caps, which said not to call,
    holds back only while the calls are ``calls_capped`` still (for a call back: the
    customer not on the line, and a cap reached): once they may be called, the call back
    is asked for.

    >>> from datetime import UTC
    >>> from feature_store.features import ContactHistory
    >>> at = datetime(2026, 12, 7, tzinfo=UTC)
    >>> said_not_to_call = CustomerFeatures(contact=ContactHistory(
    ...     last_intervention={"save_desk": at - timedelta(hours=1)},
    ...     last_intervention_capped=("save_desk",)))
    >>> [cooling_down("save_desk", 1, said_not_to_call, at, InterventionRules(), capped)
    ...  for capped in (True, False)]
    [True, False]
    """
    last = features.contact.last_intervention.get(kind)
    cooldown_s = rules.cooldown_s.get(kind)
    if last is None or cooldown_s is None or now - last >= timedelta(seconds=cooldown_s):
        return False
    if not calls_capped and kind in features.contact.last_intervention_capped:
        return False  # it said not to call, and they may be called now
    return priority >= features.contact.last_intervention_priority.get(kind, 1)


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


def _call_back_stopped(
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


def interventions_for(
    event: TouchpointEvent,
    features: CustomerFeatures | None,
    now: datetime,
    rules: InterventionRules = InterventionRules(),
    risk: float | None = None,
    risk_crossed: bool = False,
    offers_held_out: bool = False,
    call_needs_grant: bool = False,
    raised_lately: Sequence[Intervention] = (),
    subject: str | None = None,
    offer_refused: str | None = None,
    calls_quiet_until: str | None = None,
    calls_capped: CallsCapped | None = None,
    on_the_line_now: bool | None = None,
    risk_high: bool = False,
) -> list[Intervention]:
    """The interventions ``event`` calls for; ``offers_held_out``: the customer is in the
    offers' control group, so no suggested action offers them anything;
    ``offer_refused``: why the contact policy would not make the customer the
    :data:`RETENTION_OFFER` on a call now (``None``: it would), so a retention call does
    not suggest it either (see :func:`retention_action`); ``calls_quiet_until``: the
    call channel is in its quiet hours for the customer until then (their local
    ``"HH:MM"``), so a call back it asks for, the customer not on the line, waits until
    then (reason :data:`QUIET_CALLS`); ``calls_capped``: the customer reached the call
    channel's caps, so a call back it asks for, the customer not on the line, says not
    to call (reason: the cap's, see :class:`CallsCapped`, instead of the quiet hours');
    ``call_needs_grant``: calls need consent the customer granted (opt-in);
    ``raised_lately``: alerts raised for the customer earlier in the batch (not in
    ``features`` yet), for a do-not-call to know of the call-backs among them;
    ``subject``: the customer as the alerts' ids name them (a worker's: their keyed
    hash, see :func:`intervention_id_for`); ``None``, by their id;
    ``on_the_line_now``: whether the customer is on the line at ``event`` (``None``: as
    :func:`on_the_line` says; a caller that knows the call is over, too old or ended,
    says ``False``): it decides whether calls need their consent, whether the caps and
    quiet hours hold, and the queue and agent of a crossing's own retention call;
    ``risk_high``: the customer's churn-risk band is high (after ``event``), for a
    crossing's retention call the caps held back to be asked for once they lift
    (:func:`retention_owed`)."""
    if features is None:
        return []
    line = on_the_line(event) if on_the_line_now is None else on_the_line_now
    wanted: list[tuple[str, Priority, list[str], str | None]] = []
    valuable = features.value >= rules.high_value
    match event:
        case Call(status="started", direction="inbound", reason=reason):
            queue = queue_named(event.queue)
            if reason == "cancel":
                wanted.append(("save_desk", 1, ["call_reason:cancel"], queue or "retention"))
            if features.segment == "at_risk":
                wanted.append(("retention_call", 1, ["segment:at_risk"], queue))
            elif valuable or features.segment == "model":
                wanted.append(("vip_attention", 2, [f"value:{features.value:.0f}"], queue))
            if reason == "complaint" and features.complaints_30d >= rules.repeat_complaints:
                why = [f"complaints_30d:{features.complaints_30d}"]
                wanted.append(("service_recovery", 1, why, queue))
        case WebClick(page=page) if cancellation_page(page):
            wanted.append(("save_desk", 2, ["visited:cancellation_page"], "retention"))
        case SocialMention(sentiment=s, reach=reach) if s <= rules.negative_sentiment:
            wide = (reach or 0) >= rules.wide_reach
            priority: Priority = 1 if wide or valuable else 2 if (reach or 0) >= 100 else 3
            why = [f"negative_mention:{s:.2f}", f"reach:{reach or 0}"]
            wanted.append(("service_recovery", priority, why, "social"))
    if _call_back_stopped(event, features, now, raised_lately):
        # for every queue: whichever screen holds the call-back
        wanted.append(("do_not_call", 1, ["consent_withdrawn:call"], None))
    crossing_alone = False  # a retention call for the crossing alone: named after it
    if risk_crossed and risk is not None:
        crossed = f"{RISK_CROSSED}{risk:.2f}"
        calls = [reasons for kind, _, reasons, _ in wanted if kind == "retention_call"]
        if calls:  # the call already asks for one: it says the risk crossed too
            calls[0].append(crossed)
        else:
            # on the line: in the call's queue, for its agent; else a call-back
            queue = queue_named(event.queue) if isinstance(event, Call) and line else "retention"
            wanted.append(("retention_call", 2, [crossed], queue))
            crossing_alone = True
    elif (
        might_intervene(event)
        and not isinstance(event, Consent)
        and retention_owed(features, calls_capped is not None and not line, risk_high)
    ):
        queue = queue_named(event.queue) if isinstance(event, Call) and line else "retention"
        wanted.append(("retention_call", 2, [RETENTION_OWED], queue))
    back = returned_after(event, features.recent, timedelta(days=rules.lapse_days))
    # a withdrawal may raise the word not to call, but it is no return (see NOTICED)
    if (might_intervene(event) and not isinstance(event, Consent)
            and (valuable or features.spend >= rules.high_value)):  # fmt: skip
        if back and not welcomed_back(features, back):
            wanted.append(("win_back", 2, [f"returned_after_days:{back.away.days}"], None))
        elif win_back_owed(features, now, rules, calls_capped is not None and not line):
            wanted.append(("win_back", 2, [WIN_BACK_OWED], None))
    if not line and not features.consents_to("call", call_needs_grant):
        # the contact centre would have to call them, and they said not to: only a reply
        # where they spoke up in public is left, and the word not to call
        wanted = [w for w in wanted if w[0] in ("service_recovery", "do_not_call")]
    out: list[Intervention] = []
    named = event.customer_id if subject is None else subject
    agent = event.agent_id if isinstance(event, Call) else None
    recent = features.recent[:5]
    # an inbound call needs no grant, but a withdrawal holds its offers back
    actions = ACTIONS
    if offers_held_out:
        actions = HELD_OUT_ACTIONS
    elif not features.consents_to("call"):
        actions = NO_CALL_OFFER_ACTIONS
    elif offer_refused is not None:
        actions = {**ACTIONS, "retention_call": retention_action(offer_refused)}
    # the contact centre would call them back past their caps for calls (not at all),
    # or in their quiet hours for calls (later); a customer on the line is held by neither
    capped = calls_capped if not line else None
    wait = calls_quiet_until if not line else None
    urgent: dict[str, tuple[str, Priority, list[str], str | None]] = {}
    for w in wanted:  # one alert of each kind: the most urgent (of equals, the first)
        if w[0] not in urgent or w[1] < urgent[w[0]][1]:
            urgent[w[0]] = w
    for kind, priority, reasons, queue in urgent.values():
        if cooling_down(kind, priority, features, now, rules, capped is not None):
            continue
        action = actions.get(kind, ACTIONS[kind])
        if capped is not None and kind in CALL_BACKS:  # no call to make, quiet or not
            reasons = [*reasons, capped.alert_reason]
            action = calls_capped_action(action, capped, features.timezone)
        elif wait is not None and kind in CALL_BACKS:
            reasons = [*reasons, QUIET_CALLS]
            action = after_quiet_hours(action, wait, features.timezone)
        alert_id = intervention_id_for(kind, event.event_id, named)
        whose = agent
        if crossing_alone and kind == "retention_call":
            alert_id = crossing_id_for(named, features)
            whose = agent if line else None  # a call-back: for whoever takes it
        out.append(
            Intervention(
                intervention_id=alert_id,
                customer_id=event.customer_id,
                ts=now,
                kind=kind,
                priority=priority,
                trigger_event_id=event.event_id,
                reasons=reasons,
                suggested_action=action,
                queue=queue,
                agent_id=whose,
                context=InterventionContext(
                    segment=features.segment,
                    risk=None if risk is None else round(risk, 4),
                    value=features.value,
                    recent_touchpoints=[f"{r.ts:%Y-%m-%d %H:%M} {r.type}" for r in recent],
                    timezone=features.timezone,
                    currency=rules.currency,
                ),
                trigger_ts=event.ts,
            )
        )
    return out
