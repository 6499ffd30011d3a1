"""A batch being decided: what its decisions read once, laid out by customer (their
features, who was erased, where their churn risk is watched, the decisions recorded for
their touchpoints) with the day's offer budgets, and the alerts raised as it is decided.
:class:`agents.touchpoint_decisions.TouchpointDecisions` decides it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import msgspec

from agents.batch_result import BatchResult, EventKey
from agents.decision_plan import DecisionPlan, Pending
from agents.decision_reads import DecisionReads
from agents.interventions import InterventionRules
from agents.letters import SourceRecord
from agents.offer_budget import BudgetLedger
from agents.risk_crossings import RiskWatchAt, risk_watch_at
from feature_store import CustomerFeatures
from schemas import (
    Intervention,
    NextBestOffer,
    OfferCatalogue,
    TouchpointEvent,
    decode_next_best_offer,
)


@dataclass(slots=True)
class DecidingBatch:
    """A batch being decided: what its decisions read once, and the alerts they raise."""

    catalogue: OfferCatalogue
    profiles: dict[str, CustomerFeatures | None]  # with the offers decided so far counted
    erased: set[str]
    now: datetime
    budgets: BudgetLedger | None
    watched: dict[str, RiskWatchAt]  # customer -> where their risk is watched
    batch_of: dict[str, list[TouchpointEvent]]  # customer -> their touchpoints to decide
    # features are read once a batch: one alert of each kind per customer, the most urgent
    raised: list[Intervention] = field(default_factory=list)  # in time, in order
    late: list[Intervention] = field(default_factory=list)  # set aside (see too_late)
    # customer -> their alerts raised so far in time: not in their features yet (a
    # do-not-call counts the call-backs among them)
    timely: dict[str, list[Intervention]] = field(default_factory=dict)
    # touchpoint -> its decision, recorded before a worker that stopped could send it:
    # sent again as it was, under the id it was recorded with (its contact and spending
    # are counted already)
    recorded: dict[EventKey, NextBestOffer] = field(default_factory=dict)
    # customer -> why their keys could not be read as features (a key of another type,
    # a value that is no number): their touchpoints are dead-lettered, the others decided
    unreadable: dict[str, Exception] = field(default_factory=dict)
    # the touchpoints this batch applied (not come again): those too late to decide on
    # are counted once, with the first copy
    applied_now: set[EventKey] = field(default_factory=set)
    # customer -> how their decisions' and alerts' ids name them (DecisionPlan's)
    subjects: dict[str, str] = field(default_factory=dict)


def deciding_batch(
    plan: DecisionPlan,
    reads: DecisionReads,
    result: BatchResult,
    clock: Callable[[], datetime],
    rules: InterventionRules,
) -> DecidingBatch:
    """The batch to decide, from what was read once for it: the customers' features,
    the day's offer budgets (kept in ``result`` too) and the decisions recorded for
    its touchpoints."""
    customers = plan.customers
    found = reads.views
    profiles = {c: features for c, (_, features) in zip(customers, found, strict=True)}
    # erased after their touchpoints were applied: nothing is decided about them
    erased = {c for c, (gone, _) in zip(customers, found, strict=True) if gone}
    now = clock()
    limits = plan.catalogue.daily_limits()
    timezone = plan.catalogue.contact_policy.timezone  # whose days the budgets count
    budgets = result.budgets = (
        BudgetLedger.for_day(now, limits, reads.spent, plan.today, timezone) if limits else None
    )
    result.catalogue = plan.catalogue
    watched, batch_of = _risk_watch_plan(plan.pending, now, rules, plan.applied)
    batch = DecidingBatch(plan.catalogue, profiles, erased, now, budgets, watched,
                          batch_of, unreadable=reads.unreadable,
                          applied_now=plan.applied_now,
                          subjects=plan.subjects)  # fmt: skip
    for context in reads.contexts:  # none where it expired (or is unreadable): anew
        decision = _recorded(context)
        if decision is not None and decision.trigger_event_id is not None:
            # under its id first, then under the older form's (DecisionPlan.asked)
            key = (decision.customer_id, decision.trigger_event_id)
            batch.recorded.setdefault(key, decision)
    return batch


def _recorded(context: str | None) -> NextBestOffer | None:
    """The decision a stored context holds; ``None`` for none, or for one that is not a
    decision (a corrupt key: the touchpoint is decided anew).

    >>> _recorded(None), _recorded("not json")
    (None, None)
    """
    if context is None:
        return None
    try:
        return decode_next_best_offer(context)
    except msgspec.DecodeError:
        return None


def sent_at(record: SourceRecord) -> datetime | None:
    """When ``record`` reached Kafka, unless re-driven (see
    :func:`agents.interventions.too_late`)."""
    if record.produced_ms is None or record.redriven_from is not None:
        return None
    return datetime.fromtimestamp(record.produced_ms / 1000, UTC)


def _risk_watch_plan(
    pending: list[Pending],
    now: datetime,
    rules: InterventionRules,
    applied: dict[str, list[TouchpointEvent]],
) -> tuple[dict[str, RiskWatchAt], dict[str, list[TouchpointEvent]]]:
    """Per customer: where their risk is watched, and their touchpoints to decide;
    ``applied``: all their touchpoints applied in the batch."""
    # Risk is watched once per customer and batch, on their newest touchpoint not yet
    # decided: one applied now, or one applied before whose batch never confirmed its
    # decisions (a crash in between), whose risk bookkeeping may be missing too. (The
    # risk fact is applied once; the learner drops an example it has just learned.)
    # A churn signal among their other touchpoints of the batch labels the snapshot too.
    # Its crossing is raised at their inbound call, when they are on the line (an
    # ``ended`` record of the batch, never decided on, says they hung up).
    sent_of: dict[str, list[tuple[TouchpointEvent, datetime | None]]] = {}
    for record, e, _ in pending:
        sent_of.setdefault(e.customer_id, []).append((e, sent_at(record)))
    watched = {c: risk_watch_at(tps, now, rules, applied.get(c, []))
               for c, tps in sent_of.items()}  # fmt: skip
    return watched, {c: [e for e, _ in tps] for c, tps in sent_of.items()}
