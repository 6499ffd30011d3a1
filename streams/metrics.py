"""What a Moments process tells its Prometheus metrics (the families of the contract are
in streams.metric_families): decisions and outcomes counted, offer budgets as of the
catalogue's day, model figures, and the text a scrape reads."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Literal

from prometheus_client import CollectorRegistry, Gauge, disable_created_metrics, generate_latest

from agents.batch_result import BatchResult
from agents.offer_budget import BudgetLedger, budget_day
from schemas import Intervention, NextBestOffer, OfferCatalogue
from streams.metric_children import Children
from streams.metric_families import MetricFamilies
from streams.offer_series import OffersGone

disable_created_metrics()  # type: ignore[no-untyped-call]

Dependency = Literal["redis", "kafka"]  # moments_dependency_up's label: a fixed set
# why a model answers with its baseline (agents.risk.ChurnRisk.reason, but "model"):
# moments_model_baseline_reason's label, each shown, 1 or 0
BASELINE_REASONS = ("warming_up", "drift_detected")

FRESH_PER_S, FRESH_BURST = 10.0, 50.0  # how often /metrics writes its text anew (see
# Metrics.shared_exposition): a scrape every 15 s, or a test reading a few times a second,
# always gets it as of then; a client asking without end costs 10 texts a second


class Metrics(MetricFamilies):
    """The metrics of one process, in their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self._budgeted: set[str] = set()  # offers with a budget, as last counted
        # the daily limits of the catalogue in use (None until one is): what the gauges
        # show, whatever catalogue a batch finishing after a reload was decided with
        self._limits: dict[str, int] | None = None
        self._budget_day: date | None = None  # the day those counts are of
        self._budget_timezone = "UTC"  # the catalogue's, whose days the budgets count
        # see shared_exposition: when last asked, texts it may write anew, the last one
        self._shared: tuple[float, float, bytes | None] = (0.0, FRESH_BURST, None)
        super().__init__(registry)
        self.decided = Children(self.decisions)
        self._made = Children(self.offers_made)
        self._offer_outcomes = Children(self.offer_outcomes)
        self._store_ops = Children(self.feature_store)
        self.http_requests = Children(self.http)
        self.fell_back = Children(self.fallbacks)
        for reason in ("latency_budget", "store_unavailable"):
            self.fell_back(reason)
        # the per-offer series (offers_made, offer_outcomes) go once their offer has been
        # out of the catalogue longer than its decisions can bring outcomes
        # (streams.offer_series)
        self._offers_gone = OffersGone()

    # PipelineObserver
    def batch_handled(self, result: BatchResult) -> None:
        self.batch_size.observe(len(result.results))
        for kind, outcome in result.results:
            self.events.labels(kind, outcome).inc()
        if result.misrouted:
            self.events_misrouted.inc(result.misrouted)
        for alert in result.too_late:
            self.interventions_too_late.labels(alert.kind).inc()
        for channel in result.moments_passed:
            self.decisions_too_late.labels(channel).inc()
        if result.budgets is not None:
            self.budgets_counted(result.budgets)

    def budgets_counted(self, ledger: BudgetLedger) -> None:
        """The day's offer budgets after a batch of decisions spent them (a batch that
        read an earlier day's, finishing after one of a later day, changes nothing)."""
        if self._budget_day is not None and ledger.day < self._budget_day:
            return
        if self._limits is None:  # no catalogue shown yet: the batch's
            self._budget_timezone = ledger.timezone
        elif ledger.timezone != self._budget_timezone:  # decided before a reload: its day
            return  # is another zone's
        limits = ledger.limits if self._limits is None else self._limits
        self._budgets_of(limits)
        self._budget_day = ledger.day
        for offer_id, limit in limits.items():
            self.offer_budget_limit.labels(offer_id).set(limit)
            if offer_id in ledger.limits:  # counted by this batch (one of a reload's may not)
                self.offer_budget_spent.labels(offer_id).set(ledger.spent.get(offer_id, 0))

    def _budgets_of(self, limits: Mapping[str, int]) -> bool:
        """Whether the offers with a budget are others than those shown: then the
        figures of the old ones go."""
        if set(limits) == self._budgeted:
            return False
        self.offer_budget_spent.clear()
        self.offer_budget_limit.clear()
        self._budgeted = set(limits)
        return True

    @staticmethod
    def model_figure(gauge: Gauge, model: str, figure: float | None) -> None:
        """Show a learner's figure of ``model`` (its log loss, its ROC AUC); None (nothing
        scored yet, or, for ROC AUC, one class only) shows no series rather than a false 0."""
        if figure is None:
            with contextlib.suppress(KeyError):
                gauge.remove(model)
        else:
            gauge.labels(model).set(figure)

    def model_on_baseline(self, model: str, reason: str, examples: int) -> None:
        """Whether ``model`` answers with its baseline, and why: ``reason`` is one of
        :data:`BASELINE_REASONS`, or ``"model"`` while the model serves; and the examples
        it has learned in all (what tells a warm-up that goes on from one stuck)."""
        self.model_fallback.labels(model).set(0.0 if reason == "model" else 1.0)
        for each in BASELINE_REASONS:
            self.model_baseline_reason.labels(model, each).set(1.0 if reason == each else 0.0)
        self.model_examples.labels(model).set(examples)

    def forget_model_quality(self, model: str) -> None:
        """Drop the learner's figures of ``model`` (this process stopped learning it)."""
        for gauge in (self.model_logloss, self.model_rocauc, self.model_drifts,
                      self.model_fallback, self.model_examples):  # fmt: skip
            with contextlib.suppress(KeyError):
                gauge.remove(model)
        for reason in BASELINE_REASONS:
            with contextlib.suppress(KeyError):
                self.model_baseline_reason.remove(model, reason)

    def offers_in(self, decision: NextBestOffer) -> None:
        """Count the offers of a decision that is sent (catalogue ids: few)."""
        for offer in decision.offers:
            self._made(offer.offer_id, decision.channel).inc()

    def offer_outcome(self, offer_id: str, channel: str, outcome: str) -> None:
        """An outcome of an offer a stored decision made (so ``offer_id`` is Moments')."""
        self._offer_outcomes(offer_id, channel, outcome).inc()

    def decision_sent(self, decision: NextBestOffer) -> None:
        self.decided("next_best_offer", decision.channel).inc()
        self.offers_in(decision)
        if decision.trigger_ts is not None:
            delay = (datetime.now(UTC) - decision.trigger_ts).total_seconds()
            self.event_to_decision.observe(max(delay, 0.0))

    def intervention_sent(self, intervention: Intervention) -> None:
        self.decided(intervention.kind, "contact_centre").inc()
        if intervention.trigger_ts is not None:
            delay = (datetime.now(UTC) - intervention.trigger_ts).total_seconds()
            self.event_to_decision.observe(max(delay, 0.0))

    def intervention_held_out(self, intervention: Intervention) -> None:
        self.interventions_held_out.labels(intervention.kind).inc()

    def catalogue_in_use(
        self, catalogue: OfferCatalogue, outcome: str | None = None, now: datetime | None = None
    ) -> None:
        """The catalogue now in use, after a reload with ``outcome`` (or at start)."""
        if outcome is not None:
            self.catalogue_reloads.labels(outcome).inc()
        self.catalogue_info.clear()
        self.catalogue_info.labels(catalogue.version, catalogue.digest()).set(1)
        self.catalogue_offers.set(len(catalogue.offers))
        self._offers_gone.catalogue_in_use(offer.offer_id for offer in catalogue.offers)
        self._forget_offers_gone(now)
        self._limits = limits = catalogue.daily_limits()
        timezone = catalogue.contact_policy.timezone
        if timezone != self._budget_timezone:  # its budgets count another day from now on
            self._budget_timezone = timezone
            if self._budget_day is not None:
                today = budget_day(now or datetime.now(UTC), timezone)
                if today > self._budget_day:  # a day not begun before: nothing spent yet
                    self._budget_day = today
                    for offer_id in self._budgeted:
                        self.offer_budget_spent.labels(offer_id).set(0)
                elif today < self._budget_day:  # a day counted already: unknown until a
                    self._budget_day = today  # batch reads it (not a false 0)
                    self.offer_budget_spent.clear()
        if not self._budgets_of(limits) and self._budget_day is not None:
            # shown already: a limit changed shows at once
            for offer_id, limit in limits.items():
                self.offer_budget_limit.labels(offer_id).set(limit)

    def dependency_seen(self, dependency: Dependency, up: bool) -> None:
        """What the last look at ``dependency`` found (``moments_dependency_up``)."""
        self.dependency_up.labels(dependency).set(1.0 if up else 0.0)

    def dependency_shown_by(self, dependency: Dependency, up: Callable[[], bool]) -> None:
        """``moments_dependency_up`` of ``dependency`` from ``up()``, asked at each scrape
        (a state the process keeps already, which costs no request)."""
        self.dependency_up.labels(dependency).set_function(lambda: 1.0 if up() else 0.0)

    def catalogue_file_read(self, refused: Callable[[], bool]) -> None:
        """``moments_catalogue_file_refused`` from ``refused()``, asked at each scrape
        (the catalogue reloader's state: set while the file on disk is refused)."""
        self.catalogue_file_refused.set_function(lambda: 1.0 if refused() else 0.0)

    def dead_lettered(self, count: int) -> None:
        self.dead_letters.inc(count)

    def contacts_refused(self, count: int) -> None:
        self.refused_contacts.inc(count)

    def budgets_refused(self, count: int) -> None:
        self.refused_budgets.inc(count)

    def retrying(self, reason: str) -> None:
        self.retries.labels(reason).inc()

    def letter_refused(self, outcome: str) -> None:
        self.letters_refused.labels(outcome).inc()

    # feature store observer
    def store_op(self, op: str, seconds: float) -> None:
        self._store_ops(op).observe(seconds)

    def exposition(self, now: datetime | None = None) -> bytes:
        """The text Prometheus scrapes, with budgets of a day gone by shown as unspent."""
        self._new_budget_day(budget_day(now or datetime.now(UTC), self._budget_timezone))
        self._forget_offers_gone(now)
        return generate_latest(self.registry)

    def _forget_offers_gone(self, now: datetime | None) -> None:
        """Drop the series of offers out of the catalogue too long to bring outcomes."""
        per_offer = (self._made, self._offer_outcomes)
        shown = set[str]().union(*(children.firsts() for children in per_offer))
        gone = self._offers_gone.expired(shown, (now or datetime.now(UTC)).timestamp())
        if gone:
            for children in per_offer:
                children.forget(gone)

    def shared_exposition(self, now: float | None = None) -> bytes:
        """:meth:`exposition`, written anew at most :data:`FRESH_PER_S` times a second
        (after a burst of :data:`FRESH_BURST`), the last text answered in between:
        writing it costs milliseconds, and a client asking without end (the API's
        ``/metrics`` may be in reach of many) took the CPU recommendations need. Scrapes,
        and a person or a test reading a few times a second, always get it as of then."""
        now = time.monotonic() if now is None else now
        made_at, tokens, text = self._shared
        tokens = min(FRESH_BURST, tokens + (now - made_at) * FRESH_PER_S)
        if text is None or tokens >= 1:
            text, tokens = self.exposition(), tokens - 1
        self._shared = (now, tokens, text)
        return text

    def _new_budget_day(self, today: date) -> None:
        # Budgets restart at the catalogue's midnight; a quiet process would otherwise show
        # yesterday's spending as today's until its next decision.
        if self._budget_day is None or self._budget_day >= today:
            return
        self._budget_day = today
        for offer_id in self._budgeted:
            self.offer_budget_spent.labels(offer_id).set(0)
