"""Interventions: which touchpoints should reach a contact-centre screen, and how urgently.

Pure: a touchpoint and the customer's features in, zero or more :class:`Intervention`s
out. Every kind has a cool-down, read from the customer's contact history, so one
customer never floods a screen. A cool-down holds back only alerts of its kind that are
no more urgent than the one that started it: a customer on the line is not kept from
the agent by the call-back task raised minutes before. Nor does an alert that said not to
call (the call caps reached) hold back its kind's call back once the customer may be
called.

A customer who withdraws their consent to calls within a day of an alert that may have
left a call to make gets a ``do_not_call`` alert, for every screen: once per such alert
rather than by a cool-down.

What an alert asks the agent to do, and the terms a call back is asked on (the call
channel's quiet hours and caps), are in :mod:`agents.alert_actions`; a lapsed customer's
return and the calls owed since the caps lifted in :mod:`agents.returning_customers`;
the alerts' ids in :mod:`agents.alert_ids`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import msgspec

from agents.alert_actions import (
    ACTIONS,
    CALL_BACKS,
    HELD_OUT_ACTIONS,
    NO_CALL_OFFER_ACTIONS,
    QUIET_CALLS,
    CallsCapped,
    after_quiet_hours,
    call_back_stopped,
    calls_capped_action,
    retention_action,
)
from agents.alert_ids import crossing_id_for, intervention_id_for
from agents.cancellation_pages import cancellation_page
from agents.returning_customers import (
    RETENTION_OWED,
    WIN_BACK_OWED,
    retention_owed,
    returned_after,
    welcomed_back,
    win_back_owed,
)
from feature_store import CustomerFeatures
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
from schemas.touchpoints import queue_named

HOUR = 3600
RISK_CROSSED = "risk_crossed:"  # the reason of a retention call raised by a risk crossing


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


def retention_call_possible(
    event: TouchpointEvent, features: CustomerFeatures, risk_crossed: bool, risk_high: bool
) -> bool:
    """Whether :func:`interventions_for` may raise a retention call at ``event`` (an
    at-risk customer on the line, a risk crossing, or a crossing's call still owed, see
    :func:`agents.returning_customers.retention_owed`): only then is its offer screened."""
    return (
        risk_crossed
        or (on_the_line(event) and features.segment == "at_risk")
        or retention_owed(features, False, risk_high)
    )


def might_intervene(event: TouchpointEvent) -> bool:
    """A cheap first look: only these touchpoints can raise an intervention of their own
    (a lapsed customer is noticed when they come back to browse, call or buy, see
    :func:`agents.returning_customers.returned_after`); a churn-risk crossing raises one
    from any touchpoint."""
    match event:
        case Call(status="started", direction="inbound") | WebClick() | Purchase():
            return True
        case SocialMention(sentiment=s):
            return s < 0
        case Consent(channel="call" | "all", granted=False):
            return True  # a call-back raised before may still be on a screen
    return False


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
    :data:`~agents.alert_actions.RETENTION_OFFER` on a call now (``None``: it would), so
    a retention call does not suggest it either (see
    :func:`agents.alert_actions.retention_action`); ``calls_quiet_until``: the call
    channel is in its quiet hours for the customer until then (their local ``"HH:MM"``),
    so a call back it asks for, the customer not on the line, waits until then (reason
    :data:`~agents.alert_actions.QUIET_CALLS`); ``calls_capped``: the customer reached
    the call channel's caps, so a call back it asks for, the customer not on the line,
    says not to call (reason: the cap's, see :class:`agents.alert_actions.CallsCapped`,
    instead of the quiet hours');
    ``call_needs_grant``: calls need consent the customer granted (opt-in);
    ``raised_lately``: alerts raised for the customer earlier in the batch (not in
    ``features`` yet), for a do-not-call to know of the call-backs among them;
    ``subject``: the customer as the alerts' ids name them (a worker's: their keyed
    hash, see :func:`agents.alert_ids.intervention_id_for`); ``None``, by their id;
    ``on_the_line_now``: whether the customer is on the line at ``event`` (``None``: as
    :func:`on_the_line` says; a caller that knows the call is over, too old or ended,
    says ``False``): it decides whether calls need their consent, whether the caps and
    quiet hours hold, and the queue and agent of a crossing's own retention call;
    ``risk_high``: the customer's churn-risk band is high (after ``event``), for a
    crossing's retention call the caps held back to be asked for once they lift
    (:func:`agents.returning_customers.retention_owed`)."""
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
    if call_back_stopped(event, features, now, raised_lately):
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
    # a withdrawal may raise the word not to call, but it is no return (see
    # agents.returning_customers.NOTICED)
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
