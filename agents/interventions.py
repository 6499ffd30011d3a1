"""Interventions: which touchpoints should reach a contact-centre screen, and how urgently.

Pure: a touchpoint and the customer's features in, zero or more :class:`Intervention`s
out. Every kind has a cool-down, read from the customer's contact history, so one
customer never floods a screen.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import msgspec

from feature_store import CustomerFeatures
from schemas import (
    Call,
    Intervention,
    InterventionContext,
    Purchase,
    SocialMention,
    TouchpointEvent,
    WebClick,
)
from schemas.decisions import Priority

NAMESPACE = uuid.UUID("2b0c5b8e-0f4e-4d55-b0a8-8f5f3c1d9e21")
HOUR = 3600

ACTIONS = {
    "save_desk": "Route to the save desk: ask what would make them stay before processing "
    "any cancellation.",
    "retention_call": "Acknowledge their recent experience first; offer the service-recovery "
    "voucher if it fits.",
    "vip_attention": "A high-value customer: greet by name, skip the script, resolve first time.",
    "service_recovery": "Reach out within the hour: apologise, fix the issue, follow up.",
    "win_back": "Welcome them back and ask what brought them; mention what is new for them.",
}
# for a customer in the offers' control group, who gets no offers, by hand either: the
# measured lift of the offers would be blurred
HELD_OUT_ACTIONS = {
    "retention_call": "Acknowledge their recent experience first; make no offer (the "
    "customer is in the offers' control group).",
}


@dataclass(frozen=True, slots=True)
class InterventionRules:
    high_value: float = 500.0
    negative_sentiment: float = -0.5
    wide_reach: int = 10_000
    repeat_complaints: int = 3
    lapse_days: int = 90
    cooldown_s: dict[str, int] = field(
        default_factory=lambda: {
            "save_desk": 6 * HOUR,
            "retention_call": 24 * HOUR,
            "vip_attention": 24 * HOUR,
            "service_recovery": 24 * HOUR,
            "win_back": 30 * 24 * HOUR,
        }
    )


def might_intervene(event: TouchpointEvent) -> bool:
    """A cheap first look: only these touchpoints can raise an intervention (a lapsed
    customer is noticed when they come back to browse, call or buy)."""
    match event:
        case Call(status="started", direction="inbound") | WebClick() | Purchase():
            return True
        case SocialMention(sentiment=s):
            return s < 0
    return False


def on_the_line(event: TouchpointEvent) -> bool:
    """Whether the customer is talking to the contact centre now (an inbound call): an
    alert then reaches them without anyone calling them."""
    return isinstance(event, Call) and event.direction == "inbound" and event.status == "started"


def withheld(alert: Intervention) -> Intervention:
    """The alert as the hold-out group keeps it: recorded for measuring, never shown."""
    return msgspec.structs.replace(alert, control=True, reasons=[*alert.reasons, "control_group"])


def intervention_id_for(kind: str, trigger_event_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{kind}:{trigger_event_id}"))


def interventions_for(
    event: TouchpointEvent,
    features: CustomerFeatures | None,
    now: datetime,
    rules: InterventionRules = InterventionRules(),
    risk: float | None = None,
    risk_crossed: bool = False,
    offers_held_out: bool = False,
) -> list[Intervention]:
    """The interventions ``event`` calls for; ``offers_held_out``: the customer is in the
    offers' control group, so no suggested action offers them anything."""
    if features is None:
        return []
    wanted: list[tuple[str, Priority, list[str], str | None]] = []
    valuable = features.value >= rules.high_value
    match event:
        case Call(status="started", direction="inbound", reason=reason, queue=queue):
            if reason == "cancel":
                wanted.append(("save_desk", 1, ["call_reason:cancel"], queue or "retention"))
            if features.segment == "at_risk":
                wanted.append(("retention_call", 1, ["segment:at_risk"], queue))
            elif valuable or features.segment == "model":
                wanted.append(("vip_attention", 2, [f"value:{features.value:.0f}"], queue))
            if reason == "complaint" and features.complaints_30d >= rules.repeat_complaints:
                why = [f"complaints_30d:{features.complaints_30d}"]
                wanted.append(("service_recovery", 1, why, queue))
        case WebClick(page=page) if "cancel" in page:
            wanted.append(("save_desk", 2, ["visited:cancellation_page"], "retention"))
        case SocialMention(sentiment=s, reach=reach) if s <= rules.negative_sentiment:
            wide = (reach or 0) >= rules.wide_reach
            priority: Priority = 1 if wide or valuable else 2 if (reach or 0) >= 100 else 3
            why = [f"negative_mention:{s:.2f}", f"reach:{reach or 0}"]
            wanted.append(("service_recovery", priority, why, "social"))
    if risk_crossed and risk is not None and not any(k == "retention_call" for k, *_ in wanted):
        queue = event.queue if isinstance(event, Call) else "retention"
        wanted.append(("retention_call", 2, [f"risk_crossed:{risk:.2f}"], queue))
    # newest first; the event itself is in the list too (at millisecond precision)
    before = [r for r in features.recent if r.ts < event.ts and r.event_id != event.event_id]
    lapsed = before and event.ts - before[0].ts >= timedelta(days=rules.lapse_days)
    if lapsed and might_intervene(event) and (valuable or features.spend >= rules.high_value):
        gap = (event.ts - before[0].ts).days
        wanted.append(("win_back", 2, [f"returned_after_days:{gap}"], None))
    if not on_the_line(event) and not features.consents_to("call"):
        # the contact centre would have to call them, and they said not to: only a reply
        # where they spoke up in public is left
        wanted = [w for w in wanted if w[0] == "service_recovery"]
    out: list[Intervention] = []
    recent = features.recent[:5]
    for kind, priority, reasons, queue in wanted:
        last = features.contact.last_intervention.get(kind)
        if last is not None and now - last < timedelta(seconds=rules.cooldown_s[kind]):
            continue
        if any(i.kind == kind for i in out):
            continue
        out.append(
            Intervention(
                intervention_id=intervention_id_for(kind, event.event_id),
                customer_id=event.customer_id,
                ts=now,
                kind=kind,
                priority=priority,
                trigger_event_id=event.event_id,
                reasons=reasons,
                suggested_action=(HELD_OUT_ACTIONS if offers_held_out else ACTIONS).get(
                    kind, ACTIONS[kind]
                ),
                queue=queue,
                agent_id=event.agent_id if isinstance(event, Call) else None,
                context=InterventionContext(
                    segment=features.segment,
                    risk=None if risk is None else round(risk, 4),
                    value=features.value,
                    recent_touchpoints=[f"{r.ts:%Y-%m-%d %H:%M} {r.type}" for r in recent],
                    timezone=features.timezone,
                ),
                trigger_ts=event.ts,
            )
        )
    return out
