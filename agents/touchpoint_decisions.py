"""Decide on a batch of applied touchpoints: next-best offers, churn-risk watching and
the alerts they raise.

Pure: :meth:`TouchpointDecisions.plan` says what the batch's decisions need read, the
handler reads it once a batch (:mod:`agents.decision_reads`), and
:meth:`TouchpointDecisions.decide` decides each touchpoint worth watching in order, so
that a later moment counts the offers an earlier one made, and each customer gets at
most one alert of each kind, the most urgent (the hold-out group's withheld). Each
record's result (ok, duplicate, erased, expired, failed) goes into the batch's result; a
decision that keeps failing is a dead letter. A batch whose deciding fails past one
touchpoint's (a record no decision can be made on, a fault in the logic) is decided
again customer by customer: only the customer it fails for is dead-lettered.
:func:`worth_watching` says which touchpoints are decided on (a rebuild asks it too).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime

import msgspec

from agents.alert_terms import calls_capped, calls_quiet_until, retention_offer_refused
from agents.batch_history import with_batch_history
from agents.batch_result import BatchResult, EventKey, event_key, failure_reason
from agents.batch_retries import outage
from agents.contact_ledger import contacted
from agents.control_group import ControlGroup
from agents.decision_owners import owner_of
from agents.interventions import (
    InterventionRules,
    interventions_for,
    might_intervene,
    most_urgent,
    on_the_line,
    retention_call_possible,
    too_late,
    withheld,
)
from agents.letters import SourceRecord
from agents.moments import DecisionMoment, legacy_decision_id, moment_for, moment_passed
from agents.offer_budget import BudgetLedger, budget_day
from agents.offer_policy import OfferPolicy
from agents.risk_crossings import RiskWatchAt, risk_watch_at
from agents.risk_features import risk_features_at
from agents.risk_labels import churn_signal
from agents.risk_watch import RiskHolder, RiskWatch, watch_risk
from agents.withdrawal_stops import do_not_call_for
from feature_store import (
    ApplyStatus,
    CustomerFeatures,
    RecentTouchpoint,
    risk_fact,
)
from schemas import (
    Intervention,
    NextBestOffer,
    OfferCatalogue,
    TouchpointEvent,
    decode_next_best_offer,
)

log = logging.getLogger(__name__)


def worth_watching(event: TouchpointEvent) -> bool:
    """Whether a touchpoint is decided on and scored for churn risk: a decision moment,
    a possible intervention, or a churn signal."""
    return moment_for(event) is not None or might_intervene(event) or churn_signal(event)


# what an earlier attempt at the batch may have left an event it applied as (see below)
_APPLIED_OR_SEEN = (ApplyStatus.APPLIED, ApplyStatus.DUPLICATE, ApplyStatus.DUPLICATE_RECORDED)

# a touchpoint to decide on, with the index of its result in ``BatchResult.results``
_Pending = tuple[SourceRecord, TouchpointEvent, int]


@dataclass
class DecisionPlan:
    """A batch's touchpoints to decide on, and what their decisions will read."""

    pending: list[_Pending]  # with each one's result index
    recorded: set[EventKey]  # touchpoints whose decision an earlier attempt may have recorded
    applied_now: set[EventKey]  # the touchpoints this batch applied (not come again)
    applied: dict[str, list[TouchpointEvent]]  # customer -> their touchpoints applied
    catalogue: OfferCatalogue  # one for the whole batch
    today: date  # of the day's offer budgets
    # customer -> how their decisions' and alerts' ids name them (their keyed hash)
    subjects: dict[str, str] = field(default_factory=dict)
    # withdrawals of consent to calls applied out of band, decided on for a do-not-call
    # alone (agents.withdrawal_stops), after the others
    stops: list[_Pending] = field(default_factory=list)

    @property
    def customers(self) -> list[str]:
        """The customers to read, each once, in order."""
        return list(dict.fromkeys(e.customer_id for _, e, _ in [*self.pending, *self.stops]))

    def of(self, customer: str, today: date) -> DecisionPlan:
        """The part of the plan that is ``customer``'s touchpoints, its budgets counted
        on ``today`` (see :meth:`TouchpointDecisions.decide`)."""
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


@dataclass
class DecisionReads:
    """What was read for a :class:`DecisionPlan`, in one round trip."""

    views: list[tuple[bool, CustomerFeatures | None]]  # per customer: (erased?, features)
    spent: dict[str, int]  # the day's offer budgets spent (empty: none are limited)
    contexts: list[str | None]  # per asked decision: its stored context, if any
    unreadable: dict[str, Exception]  # customer -> why their keys cannot be read

    def of(self, at: int, spent: dict[str, int]) -> DecisionReads:
        """What was read for the plan's ``at``-th customer alone, the budgets ``spent``
        so far (the decided contexts are told apart by customer: all are kept)."""
        return replace(self, views=[self.views[at]], spent=spent)


@dataclass(slots=True)
class _DecidingBatch:
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


def _touchpoints_to_decide(
    decoded: list[tuple[SourceRecord, TouchpointEvent]],
    statuses: Sequence[ApplyStatus | None],
    result: BatchResult,
    earlier: Counter[EventKey],
    recorded: set[EventKey],
    applied_now: set[EventKey],
) -> list[_Pending]:
    """Record each touchpoint's result (spending ``earlier``'s credits); return those
    still to decide. Those whose decision was recorded, not known to be sent, go in
    ``recorded`` too, and those this batch applied in ``applied_now``. Touchpoints are
    told apart by customer and event id, as the store dedupes them."""
    # A duplicate whose decision was never recorded (a crash in between) is decided
    # again; one whose decision was recorded, and may not have gone out, sends that
    # decision again; the same event twice in one batch is decided once (two customers'
    # events that share an id are two events, each decided).
    pending: list[_Pending] = []  # with its result index
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
    pending: list[_Pending],
) -> list[_Pending]:
    """The stops (:mod:`agents.withdrawal_stops`) to decide, each once and not one
    decided as a touchpoint, with the index of its record's result: ``results_of`` by
    record (the decoded ones), or its letter's (one dated ahead)."""
    at = dict(results_of)
    at.update((id(f.record), f.result) for f in result.dead_letters if f.result is not None)
    seen = {event_key(e) for _, e, _ in pending}
    out: list[_Pending] = []
    for record, stop in stops:
        if event_key(stop) not in seen and id(record) in at:
            seen.add(event_key(stop))
            out.append((record, stop, at[id(record)]))
    return out


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


def _sent(record: SourceRecord) -> datetime | None:
    """When ``record`` reached Kafka, unless re-driven (see too_late)."""
    if record.produced_ms is None or record.redriven_from is not None:
        return None
    return datetime.fromtimestamp(record.produced_ms / 1000, UTC)


def _risk_watch_plan(
    pending: list[_Pending],
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
        sent_of.setdefault(e.customer_id, []).append((e, _sent(record)))
    watched = {c: risk_watch_at(tps, now, rules, applied.get(c, []))
               for c, tps in sent_of.items()}  # fmt: skip
    return watched, {c: [e for e, _ in tps] for c, tps in sent_of.items()}


def _forget_watch(result: BatchResult, facts_at: int, examples_at: int) -> None:
    """Take back the churn-risk fact and example a dead-lettered touchpoint's watch left
    in ``result``: its band recorded, a crossing it brought would never be raised (the
    letter re-driven, or the next touchpoint, would not cross again)."""
    del result.risk_facts[facts_at:]
    for example in result.risk_examples[examples_at:]:
        result.example_customers.pop(example.example_id, None)
    del result.risk_examples[examples_at:]


class TouchpointDecisions:
    """Decides on a batch's applied touchpoints and raises their alerts."""

    def __init__(
        self,
        pseudonym: Callable[[str], str],
        policy: OfferPolicy,
        clock: Callable[[], datetime],
        max_attempts: int,
        rules: InterventionRules,
        risk: RiskHolder,
        risk_threshold: float,
        holdout: ControlGroup,
        offer_max_age_s: float = 0.0,
    ) -> None:
        self._pseudonym = pseudonym  # a customer's keyed hash, as the store names them
        self._offer_max_age_s = offer_max_age_s  # see agents.moments.moment_passed
        self._policy = policy
        self._clock = clock
        self._max_attempts = max_attempts
        self._rules = rules
        self._risk = risk
        self._risk_threshold = risk_threshold
        self._holdout = holdout  # the interventions' hold-out

    def plan(
        self,
        decoded: list[tuple[SourceRecord, TouchpointEvent]],
        statuses: Sequence[ApplyStatus | None],
        result: BatchResult,
        earlier: Counter[EventKey],
        stops: Sequence[tuple[SourceRecord, TouchpointEvent]] = (),
    ) -> DecisionPlan | None:
        """Record each touchpoint's result; what the decisions on those worth watching,
        and on the ``stops`` (:mod:`agents.withdrawal_stops`), need read
        (:func:`agents.decision_reads.read_for_decisions`), ``None`` when none is."""
        recorded: set[EventKey] = set()
        applied_now: set[EventKey] = set()
        results_of = {id(r): i for i, (r, _) in enumerate(decoded, len(result.results))}
        pending = _touchpoints_to_decide(decoded, statuses, result, earlier, recorded,
                                         applied_now)  # fmt: skip
        stopping = _stops_to_decide(stops, result, results_of, pending)
        if not pending and not stopping:
            return None
        for record, event, index in [*pending, *stopping]:
            result.touchpoints_of.setdefault(event.customer_id, []).append((record, index))
        # one catalogue for the whole batch: a reload meanwhile must not leave the budgets
        # it read unchecked or its decisions' spending uncounted
        catalogue = self._policy.catalogue.current
        today = budget_day(self._clock(), catalogue.contact_policy.timezone)
        applied: dict[str, list[TouchpointEvent]] = {}
        for (_, event), status in zip(decoded, statuses, strict=True):
            if status is not None:
                applied.setdefault(event.customer_id, []).append(event)
        subjects = {e.customer_id: self._pseudonym(e.customer_id)
                    for _, e, _ in [*pending, *stopping]}  # fmt: skip
        return DecisionPlan(pending, recorded, applied_now, applied, catalogue, today, subjects,
                            stopping)  # fmt: skip

    def decide(
        self,
        plan: DecisionPlan,
        reads: DecisionReads,
        result: BatchResult,
        newest_before: dict[str, RecentTouchpoint | None] | None = None,
    ) -> None:
        """Decide on the touchpoints ``plan`` holds from what was read for them, and
        raise their alerts. ``newest_before``: each customer's newest recent touchpoint
        before the batch.

        One touchpoint whose decision keeps failing is dead-lettered alone. Should
        deciding the batch fail past that (a record no decision can be made on, a fault
        in the logic), what it left in ``result`` is taken back and the batch is decided
        again customer by customer, in the order they come (each counting the budgets
        the ones before spent): a customer whose deciding fails has their touchpoints
        to decide on dead-lettered, naming the error, and nothing of theirs sent; the
        others are decided. An outage (none is looked for: nothing is read here) is
        raised, for the batch to wait."""
        saved = result.snapshot()
        try:
            self._decide(plan, reads, result, newest_before)
        except Exception as exc:
            if outage(exc):
                raise
            log.warning("deciding a batch failed (%s): deciding its %d customers one by one",
                        type(exc).__name__, len(plan.customers))  # fmt: skip
            result.restore(saved)
            self._decide_each(plan, reads, result, newest_before)

    def _decide_each(
        self,
        plan: DecisionPlan,
        reads: DecisionReads,
        result: BatchResult,
        newest_before: dict[str, RecentTouchpoint | None] | None,
    ) -> None:
        """:meth:`decide`, customer by customer: one whose deciding fails leaves
        nothing in ``result`` but the dead letters of their touchpoints."""
        failed: Counter[str] = Counter()  # the kinds of error, for the log (no ids)
        for at, customer in enumerate(plan.customers):
            ledger = result.budgets  # the spending of the customers decided before
            spent = dict(ledger.spent) if ledger is not None else reads.spent
            today = ledger.day if ledger is not None else plan.today
            saved = result.snapshot()
            try:
                self._decide(plan.of(customer, today), reads.of(at, spent), result,
                             newest_before)  # fmt: skip
            except Exception as exc:
                if outage(exc):
                    raise
                result.restore(saved)
                failed[type(exc).__name__] += 1
                reason = failure_reason("decision", exc)
                lettered = {id(f.record) for f in result.dead_letters}  # a stop dated ahead
                for record, event, index in [*plan.pending, *plan.stops]:
                    if event.customer_id == customer and id(record) not in lettered:
                        result.set_aside(record, reason, index)
        if failed:
            log.warning("%d of %d customers of a batch could not be decided (%s): their "
                        "touchpoints are dead-lettered, the others decided", failed.total(),
                        len(plan.customers), ", ".join(sorted(failed)))  # fmt: skip

    def _decide(
        self,
        plan: DecisionPlan,
        reads: DecisionReads,
        result: BatchResult,
        newest_before: dict[str, RecentTouchpoint | None] | None,
    ) -> None:
        """:meth:`decide`, all at once: raises whatever fails past one touchpoint."""
        batch = self._deciding_batch(plan, reads, result)
        before = newest_before or {}
        for customer_id, features in batch.profiles.items():
            if features is not None:
                batch.profiles[customer_id] = with_batch_history(
                    features, before.get(customer_id), plan.applied.get(customer_id, [])
                )
        for record, event, index in plan.pending:
            if event.customer_id in batch.erased:
                continue
            fault = batch.unreadable.get(event.customer_id)
            if fault is not None:  # applied, but their features cannot be read to decide
                result.set_aside(record, failure_reason("decision read", fault), index)
                continue
            self._decide_touchpoint(record, event, index, batch, result)
        self._decide_stops(plan.stops, batch, result)
        self._raise_interventions(batch, result)

    def _decide_stops(
        self, stops: list[_Pending], batch: _DecidingBatch, result: BatchResult
    ) -> None:
        """Raise the do-not-calls of the batch's stops (:mod:`agents.withdrawal_stops`),
        after its touchpoints' alerts: a call-back raised among them counts. Never too
        late (see :func:`agents.interventions.too_late`)."""
        lettered = {id(f.record) for f in result.dead_letters}  # one dated ahead
        for record, stop, index in stops:
            customer = stop.customer_id
            if customer in batch.erased:
                continue  # nothing is said of them
            fault = batch.unreadable.get(customer)
            if fault is not None:  # as a touchpoint of theirs: sent again once mended
                if id(record) not in lettered:
                    result.set_aside(record, failure_reason("decision read", fault), index)
                continue
            alerts = do_not_call_for(
                stop, batch.profiles[customer], batch.now, self._rules,
                batch.timely.get(customer, []), batch.subjects[customer],
            )  # fmt: skip
            batch.raised += alerts
            batch.timely.setdefault(customer, []).extend(alerts)

    def _deciding_batch(
        self, plan: DecisionPlan, reads: DecisionReads, result: BatchResult
    ) -> _DecidingBatch:
        """The batch to decide, from what was read once for it: the customers' features,
        the day's offer budgets (kept in ``result`` too) and the decisions recorded for
        its touchpoints."""
        customers = plan.customers
        found = reads.views
        profiles = {c: features for c, (_, features) in zip(customers, found, strict=True)}
        # erased after their touchpoints were applied: nothing is decided about them
        erased = {c for c, (gone, _) in zip(customers, found, strict=True) if gone}
        now = self._clock()
        limits = plan.catalogue.daily_limits()
        timezone = plan.catalogue.contact_policy.timezone  # whose days the budgets count
        budgets = result.budgets = (
            BudgetLedger.for_day(now, limits, reads.spent, plan.today, timezone) if limits else None
        )
        result.catalogue = plan.catalogue
        watched, batch_of = _risk_watch_plan(plan.pending, now, self._rules, plan.applied)
        batch = _DecidingBatch(plan.catalogue, profiles, erased, now, budgets, watched,
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

    def _decide_touchpoint(
        self,
        record: SourceRecord,
        event: TouchpointEvent,
        index: int,
        batch: _DecidingBatch,
        result: BatchResult,
    ) -> None:
        """Decide on one touchpoint, trying again on failure; one that keeps failing is a
        dead letter."""
        profiles = batch.profiles
        watch: RiskWatch | None = None
        watch_taken = False
        facts_at, examples_at = len(result.risk_facts), len(result.risk_examples)
        for attempt in range(1, self._max_attempts + 1):
            try:
                features = profiles[event.customer_id]
                at = batch.watched.get(event.customer_id)
                mine = at is not None and at.raised_at == event.event_id
                if not watch_taken and features is not None and at is not None and mine:
                    # scored as of their newest touchpoint, raised here
                    watch = self._watch_churn_risk(at.scored_at, features, batch, result)
                watch_taken = True  # a decision that fails is tried again without it
                key = event_key(event)
                recorded = batch.recorded.get(key)
                sent = _sent(record)
                subject = batch.subjects[event.customer_id]
                moment = moment_for(event, subject)
                if moment is not None and recorded is not None:  # its id, as recorded (one
                    # of an older form too): decided again under it, if its contact is refused
                    moment = replace(moment, decision_id=recorded.decision_id)
                if (
                    moment is not None
                    and recorded is None
                    and moment_passed(moment, batch.now, self._offer_max_age_s, sent)
                ):  # the customer has long left: nothing is offered
                    passed, moment = moment.channel, None
                else:
                    passed = None
                # a crossing raised here is on the line only while the customer is (not
                # at a call long over, or one the batch shows ended); the touchpoint's
                # own alerts as the call says (those of one long over are too late)
                line = None
                if watch is not None and watch.crossed and at is not None:
                    line = at.on_the_line
                decision, alerts = self._decide_one(
                    event, moment, features, batch.now, watch, batch.budgets,
                    batch.catalogue, batch.timely.get(event.customer_id, []), subject,
                    recorded, line,
                )  # fmt: skip
                late = [too_late(alert, self._rules, sent) for alert in alerts]
                # what can fail has run: an attempt that failed left nothing in the batch
                fresh = key in batch.applied_now  # a copy was counted already
                if passed is not None and fresh:
                    result.moments_passed.append(passed)
                if decision is not None:
                    result.decisions.append(decision)
                    if moment is not None:  # to decide it again (see TouchpointHandler.reserve)
                        result.moments[decision.decision_id] = moment
                        if recorded is None:  # decided now: claimed before it counts
                            result.owners[decision.decision_id] = owner_of(record)
                        told = features.timezone if features is not None else None
                        result.timezones[event.customer_id] = told
                    if features is not None and recorded is None:  # the next moment
                        profiles[event.customer_id] = contacted(features, decision)  # counts it
                for alert, is_late in zip(alerts, late, strict=True):
                    if not is_late:
                        batch.raised.append(alert)
                        batch.timely.setdefault(event.customer_id, []).append(alert)
                    elif fresh:  # not raised; counted once, with the first copy
                        batch.late.append(alert)
                break
            except Exception as exc:
                if attempt == self._max_attempts:
                    result.set_aside(record, failure_reason("decision", exc), index)
                    _forget_watch(result, facts_at, examples_at)

    def _watch_churn_risk(
        self,
        event: TouchpointEvent,
        features: CustomerFeatures,
        batch: _DecidingBatch,
        result: BatchResult,
    ) -> RiskWatch:
        """Score the customer's churn risk at ``event``; keep in ``result`` the example it
        gives the learner and the risk fact to record."""
        watch = watch_risk(
            event, features, batch.now, self._risk.model, self._risk_threshold,
            subject=batch.subjects[event.customer_id],
            alongside=batch.batch_of[event.customer_id],
        )  # fmt: skip
        if watch.example is not None:
            result.risk_examples.append(watch.example)
            result.example_customers[watch.example.example_id] = event.customer_id
        if watch.snapshot is not None or watch.band is not None:
            result.risk_facts.append(risk_fact(
                event.event_id, event.customer_id, event.ts,
                watch.snapshot, watch.band,
            ))  # fmt: skip
        return watch

    def _raise_interventions(self, batch: _DecidingBatch, result: BatchResult) -> None:
        """Set aside the alerts raised too late; of the others raise each customer's most
        urgent of each kind, withholding the hold-out group's."""
        result.too_late += batch.late  # (decided customer by customer: each one's)
        for alert in most_urgent(batch.raised):
            if self._holdout.contains(alert.customer_id):
                result.held_out.append(withheld(alert))
            else:
                result.interventions.append(alert)

    def _decide_one(
        self,
        event: TouchpointEvent,
        moment: DecisionMoment | None,
        features: CustomerFeatures | None,
        now: datetime,
        watch: RiskWatch | None,
        budgets: BudgetLedger | None,
        catalogue: OfferCatalogue,
        raised_lately: list[Intervention],
        subject: str,
        recorded: NextBestOffer | None = None,
        line: bool | None = None,
    ) -> tuple[NextBestOffer | None, list[Intervention]]:
        """The decision and alerts of ``event``; ``line``: whether the customer is on the
        line at it (``None``: as :func:`agents.interventions.on_the_line` says)."""
        if line is None:
            line = on_the_line(event)
        # recorded before it was sent: sent again as it was, but for a channel the
        # customer withdrew from since (a worker stopped in between, a batch re-driven)
        decision = recorded
        if decision is not None and features is not None:
            decision = self._policy.contact_policy.still_allowed(
                decision, features, catalogue.contact_policy,
                inbound=moment is not None and moment.inbound,
            )  # fmt: skip
        # a crossing is raised whatever event brought it (an unsubscribe, consent withdrawn
        # for all), or the inbound call it is raised at (agents.risk_crossings): the band
        # is stored now, and the next event would not cross again
        crossed = watch is not None and watch.crossed
        alerting = features is not None and (crossed or might_intervene(event))
        # what the contact policy says of the calls its alerts ask for, before this
        # touchpoint's own decision spends the budgets: the two agree on the offer
        refused = quiet = capped = None
        # a crossing's call still owed is asked for at the touchpoint scored (the batch's
        # newest of the customer's), by the band it leaves stored
        risk_high = watch is not None and watch.held_band == "high"
        if features is not None and alerting:
            if retention_call_possible(event, features, crossed, risk_high):
                refused = retention_offer_refused(
                    self._policy.contact_policy, catalogue, event.customer_id, features,
                    now, budgets, inbound=line,
                )  # fmt: skip
            quiet = calls_quiet_until(catalogue, features, now)
            capped = calls_capped(catalogue, features)  # counts the batch's offers before
        if moment is not None and decision is None:
            decision = self._policy.decide(moment, features, now, budgets, catalogue)
        alerts = []
        if features is not None and alerting:
            # risk is scored as of the customer's newest touchpoint of the batch (the
            # touchpoint raising its crossing shows it); an alert their earlier one raises
            # shows the risk the model gives it all the same
            risk = watch.risk if watch is not None else self._risk.model.predict_one(
                risk_features_at(features, event.ts, event.event_id)
            )  # fmt: skip
            alerts = interventions_for(
                event,
                features,
                now,
                self._rules,
                risk=risk,
                risk_crossed=crossed,
                risk_high=risk_high,
                offers_held_out=self._policy.contact_policy.control_group.contains(
                    event.customer_id
                ),
                call_needs_grant=catalogue.contact_policy.needs_grant("call"),
                raised_lately=raised_lately,
                subject=subject,
                offer_refused=refused,
                calls_quiet_until=quiet,
                calls_capped=capped,
                on_the_line_now=line,
            )
        return decision, alerts
