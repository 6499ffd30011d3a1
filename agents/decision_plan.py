"""A batch's plan: which of its applied touchpoints are decided on, each once, and what
their decisions will read. A touchpoint is decided on when :func:`worth_watching` says so
(a rebuild asks it too); a duplicate whose decision was recorded, and may not have gone
out, sends that decision again; the same touchpoint twice in one batch is decided once.
:meth:`agents.touchpoint_decisions.TouchpointDecisions.plan` makes the plan."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime

from agents.batch_result import BatchResult, EventKey, event_key, failure_reason
from agents.batch_retries import outage
from agents.catalogue_holder import CatalogueHolder
from agents.interventions import might_intervene
from agents.letters import SourceRecord
from agents.moments import legacy_decision_id, moment_for
from agents.offer_budget import budget_day
from agents.risk_labels import churn_signal
from feature_store import ApplyStatus
from schemas import OfferCatalogue, TouchpointEvent


def worth_watching(event: TouchpointEvent) -> bool:
    """Whether a touchpoint is decided on and scored for churn risk: a decision moment,
    a possible intervention, or a churn signal."""
    return moment_for(event) is not None or might_intervene(event) or churn_signal(event)


# what an earlier attempt at the batch may have left an event it applied as (see below)
_APPLIED_OR_SEEN = (ApplyStatus.APPLIED, ApplyStatus.DUPLICATE, ApplyStatus.DUPLICATE_RECORDED)

# a touchpoint to decide on, with the index of its result in ``BatchResult.results``
Pending = tuple[SourceRecord, TouchpointEvent, int]


@dataclass
class DecisionPlan:
    """A batch's touchpoints to decide on, and what their decisions will read."""

    pending: list[Pending]  # with each one's result index
    recorded: set[EventKey]  # touchpoints whose decision an earlier attempt may have recorded
    applied_now: set[EventKey]  # the touchpoints this batch applied (not come again)
    applied: dict[str, list[TouchpointEvent]]  # customer -> their touchpoints applied
    catalogue: OfferCatalogue  # one for the whole batch
    today: date  # of the day's offer budgets
    # customer -> how their decisions' and alerts' ids name them (their keyed hash)
    subjects: dict[str, str] = field(default_factory=dict)
    # withdrawals of consent to calls applied out of band, decided on for a do-not-call
    # alone (agents.withdrawal_stops), after the others
    stops: list[Pending] = field(default_factory=list)

    @property
    def customers(self) -> list[str]:
        """The customers to read, each once, in order."""
        return list(dict.fromkeys(e.customer_id for _, e, _ in [*self.pending, *self.stops]))

    def of(self, customer: str, today: date) -> DecisionPlan:
        """The part of the plan that is ``customer``'s touchpoints, its budgets counted
        on ``today`` (see :meth:`agents.touchpoint_decisions.TouchpointDecisions.decide`)."""
        pending = [p for p in self.pending if p[1].customer_id == customer]
        stops = [p for p in self.stops if p[1].customer_id == customer]
        return replace(self, pending=pending, stops=stops, today=today)

    @property
    def asked(self) -> list[tuple[str, str]]:
        """(customer, decision id) of the decisions that may be recorded already: each
        under its id, then under the id a Moments before per-customer ids gave it (one
        it recorded, a worker of it stopped before it was marked sent)."""
        asked: list[tuple[str, str]] = []
        for _, e, _ in self.pending:
            if event_key(e) not in self.recorded:
                continue
            moment = moment_for(e, self.subjects[e.customer_id])
            if moment is not None:
                asked.append((e.customer_id, moment.decision_id))
                asked.append((e.customer_id, legacy_decision_id(e.event_id, moment.channel)))
        return asked


def plan_decisions(
    decoded: list[tuple[SourceRecord, TouchpointEvent]],
    statuses: Sequence[ApplyStatus | None],
    result: BatchResult,
    earlier: Counter[EventKey],
    stops: Sequence[tuple[SourceRecord, TouchpointEvent]],
    catalogues: CatalogueHolder,
    clock: Callable[[], datetime],
    pseudonym: Callable[[str], str],
    set_aside: Mapping[int, str],
) -> DecisionPlan | None:
    """:meth:`agents.touchpoint_decisions.TouchpointDecisions.plan`: the batch's
    catalogue is the one ``catalogues`` holds now, its budgets counted on the day
    ``clock`` says; ``pseudonym``: a customer's keyed hash, as the store names them."""
    recorded: set[EventKey] = set()
    applied_now: set[EventKey] = set()
    results_of = {id(r): i for i, (r, _) in enumerate(decoded, len(result.results))}
    pending = _touchpoints_to_decide(decoded, statuses, result, earlier, recorded,
                                     applied_now, set_aside)  # fmt: skip
    stopping = _stops_to_decide(stops, result, results_of, pending)
    if not pending and not stopping:
        return None
    for record, event, index in [*pending, *stopping]:
        result.touchpoints_of.setdefault(event.customer_id, []).append((record, index))
    # one catalogue for the whole batch: a reload meanwhile must not leave the budgets
    # it read unchecked or its decisions' spending uncounted
    catalogue = catalogues.current
    today = budget_day(clock(), catalogue.contact_policy.timezone)
    applied: dict[str, list[TouchpointEvent]] = {}
    for (_, event), status in zip(decoded, statuses, strict=True):
        if status is not None:
            applied.setdefault(event.customer_id, []).append(event)
    subjects = {e.customer_id: pseudonym(e.customer_id)
                for _, e, _ in [*pending, *stopping]}  # fmt: skip
    return DecisionPlan(pending, recorded, applied_now, applied, catalogue, today, subjects,
                        stopping)  # fmt: skip


def _touchpoints_to_decide(
    decoded: list[tuple[SourceRecord, TouchpointEvent]],
    statuses: Sequence[ApplyStatus | None],
    result: BatchResult,
    earlier: Counter[EventKey],
    recorded: set[EventKey],
    applied_now: set[EventKey],
    set_aside: Mapping[int, str],
) -> list[Pending]:
    """Record each touchpoint's result (spending ``earlier``'s credits); return those
    still to decide. Those whose decision was recorded, not known to be sent, go in
    ``recorded`` too, and those this batch applied in ``applied_now``; those in
    ``set_aside`` (by record) are dead-lettered with its reason, not decided.
    Touchpoints are told apart by customer and event id, as the store dedupes them."""
    # A duplicate whose decision was never recorded (a crash in between) is decided
    # again; one whose decision was recorded, and may not have gone out, sends that
    # decision again; the same event twice in one batch is decided once (two customers'
    # events that share an id are two events, each decided).
    pending: list[Pending] = []  # with its result index
    seen: set[EventKey] = set()
    for (record, event), status in zip(decoded, statuses, strict=True):
        if status is None:
            result.results.append((event.kind, "failed"))
        elif status is ApplyStatus.ERASED:  # the customer asked to be forgotten
            result.results.append((event.kind, "erased"))
        elif status is ApplyStatus.EXPIRED:  # older than the store keeps: nothing to decide
            result.results.append((event.kind, "expired"))
        else:
            key = event_key(event)
            ok = status is ApplyStatus.APPLIED
            if status is ApplyStatus.DUPLICATE_RECORDED:
                recorded.add(key)
            if earlier[key] > 0 and status in _APPLIED_OR_SEEN:
                # applied by an earlier attempt at this batch (a duplicate now), or
                # one whose reply was lost did not run after all (applied now): the
                # credit is spent either way, and a copy after it is a duplicate
                earlier[key] -= 1
                ok = True
            result.results.append((event.kind, "ok" if ok else "duplicate"))
            if ok:
                applied_now.add(key)
            if id(record) in set_aside:  # decided once sent back (see TouchpointHandler)
                result.set_aside(record, set_aside[id(record)], len(result.results) - 1)
                continue
            try:
                wanted = worth_watching(event)
            except Exception as exc:  # no decision can be made on it: it alone is set aside
                if outage(exc):
                    raise
                result.set_aside(record, failure_reason("decision", exc), len(result.results) - 1)
                continue
            fresh = status is not ApplyStatus.DUPLICATE_DECIDED and key not in seen
            if wanted and fresh:
                seen.add(key)
                pending.append((record, event, len(result.results) - 1))
    return pending


def _stops_to_decide(
    stops: Sequence[tuple[SourceRecord, TouchpointEvent]],
    result: BatchResult,
    results_of: dict[int, int],
    pending: list[Pending],
) -> list[Pending]:
    """The stops (:mod:`agents.withdrawal_stops`) to decide, each once and not one
    decided as a touchpoint, with the index of its record's result: ``results_of`` by
    record (the decoded ones), or its letter's (one dated ahead)."""
    at = dict(results_of)
    at.update((id(f.record), f.result) for f in result.dead_letters if f.result is not None)
    seen = {event_key(e) for _, e, _ in pending}
    out: list[Pending] = []
    for record, stop in stops:
        if event_key(stop) not in seen and id(record) in at:
            seen.add(event_key(stop))
            out.append((record, stop, at[id(record)]))
    return out
