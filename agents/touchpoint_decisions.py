"""Decide on a batch of applied touchpoints: next-best offers, churn-risk watching and
the alerts they raise.

Pure: :meth:`TouchpointDecisions.plan` says what the batch's decisions need read
(:mod:`agents.decision_plan`), the handler reads it once a batch
(:mod:`agents.decision_reads`), and :meth:`TouchpointDecisions.decide` decides each
touchpoint worth watching in order (:mod:`agents.deciding_batch`), so that a later
moment counts the offers an earlier one made, and each customer gets at most one alert
of each kind, the most urgent (the hold-out group's withheld). Each record's result (ok,
duplicate, erased, expired, failed) goes into the batch's result; a decision that keeps
failing is a dead letter. A batch whose deciding fails past one touchpoint's (a record
no decision can be made on, a fault in the logic) is decided again customer by customer:
only the customer it fails for is dead-lettered.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from agents.alert_terms import calls_capped, calls_quiet_until, retention_offer_refused
from agents.batch_history import with_batch_history
from agents.batch_result import BatchResult, EventKey, event_key, failure_reason
from agents.batch_retries import outage
from agents.contact_ledger import contacted
from agents.control_group import ControlGroup
from agents.deciding_batch import DecidingBatch, deciding_batch, sent_at
from agents.decision_owners import owner_of
from agents.decision_plan import DecisionPlan, Pending, plan_decisions
from agents.decision_reads import DecisionReads
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
from agents.moments import DecisionMoment, moment_for, moment_passed
from agents.offer_budget import BudgetLedger
from agents.offer_policy import OfferPolicy
from agents.risk_features import risk_features_at
from agents.risk_watch import RiskHolder, RiskWatch, watch_risk
from agents.withdrawal_stops import do_not_call_for
from feature_store import ApplyStatus, CustomerFeatures, RecentTouchpoint, risk_fact
from schemas import Intervention, NextBestOffer, OfferCatalogue, TouchpointEvent

log = logging.getLogger(__name__)


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
        set_aside: Mapping[int, str] | None = None,
    ) -> DecisionPlan | None:
        """Record each touchpoint's result; what the decisions on those worth watching,
        and on the ``stops`` (:mod:`agents.withdrawal_stops`), need read
        (:func:`agents.decision_reads.read_for_decisions`), ``None`` when none is.
        ``set_aside``: applied touchpoints not to decide, by record (its ``id``), with
        the reason to dead-letter them."""
        return plan_decisions(decoded, statuses, result, earlier, stops,
                              self._policy.catalogue, self._clock, self._pseudonym,
                              set_aside or {})  # fmt: skip

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
        batch = deciding_batch(plan, reads, result, self._clock, self._rules)
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
        self, stops: list[Pending], batch: DecidingBatch, result: BatchResult
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

    def _decide_touchpoint(
        self,
        record: SourceRecord,
        event: TouchpointEvent,
        index: int,
        batch: DecidingBatch,
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
                sent = sent_at(record)
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
        batch: DecidingBatch,
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

    def _raise_interventions(self, batch: DecidingBatch, result: BatchResult) -> None:
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
