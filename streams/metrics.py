"""Prometheus metrics of the contract (prefix ``moments_``); no customer ids in labels."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, date, datetime
from typing import Generic, Literal, TypeVar, get_args

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

from agents.batch_result import BatchResult
from agents.offer_budget import BudgetLedger, budget_day
from schemas import Intervention, NextBestOffer, OfferCatalogue
from schemas.outcomes import OutcomeKind
from streams.offer_series import OffersGone

disable_created_metrics()  # type: ignore[no-untyped-call]

Labelled = TypeVar("Labelled", Counter, Histogram)
Dependency = Literal["redis", "kafka"]  # moments_dependency_up's label: a fixed set
# why a model answers with its baseline (agents.risk.ChurnRisk.reason, but "model"):
# moments_model_baseline_reason's label, each shown, 1 or 0
BASELINE_REASONS = ("warming_up", "drift_detected")


class Children(Generic[Labelled]):
    """A labelled metric's children, each looked up once (``labels()`` checks its values
    and takes a lock at every call: microseconds on the paths every request takes).

    >>> requests = Counter("requests", "Requests.", ["route"], registry=None)
    >>> by_route = Children(requests)
    >>> by_route("/healthz").inc()
    >>> by_route("/healthz").inc()
    >>> requests.labels("/healthz")._value.get()
    2.0
    """

    def __init__(self, metric: Labelled) -> None:
        self._metric: Labelled = metric
        self._children: dict[tuple[str, ...], Labelled] = {}

    def __call__(self, *labels: str) -> Labelled:
        child = self._children.get(labels)
        if child is None:
            child = self._children[labels] = self._metric.labels(*labels)
        return child

    def firsts(self) -> set[str]:
        """The first label of every child made (an offer id, say)."""
        return {labels[0] for labels in self._children}

    def forget(self, firsts: Collection[str]) -> None:
        """Drop every child whose first label is one of ``firsts``: its series leaves
        the exposition (a counter's series ends there; one made again starts from 0).

        >>> requests = Counter("requests", "Requests.", ["route"], registry=None)
        >>> by_route = Children(requests)
        >>> by_route("/healthz").inc(), by_route("/gone").inc()
        (None, None)
        >>> by_route.forget({"/gone"})
        >>> sorted(by_route.firsts()), [s.labels for s in requests.collect()[0].samples]
        (['/healthz'], [{'route': '/healthz'}])
        """
        for labels in [labels for labels in self._children if labels[0] in firsts]:
            del self._children[labels]
            with contextlib.suppress(KeyError):  # removed already by another way
                self._metric.remove(*labels)


FRESH_PER_S, FRESH_BURST = 10.0, 50.0  # how often /metrics writes its text anew (see
# Metrics.shared_exposition): a scrape every 15 s, or a test reading a few times a second,
# always gets it as of then; a client asking without end costs 10 texts a second
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
# a touchpoint's age at its decision: also minutes, while a worker catches up after an
# outage (past 10 s, a p99 read from LATENCY_BUCKETS alone would say 10 s however late)
EVENT_AGE_BUCKETS = (*LATENCY_BUCKETS, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


class Metrics:
    """The metrics of one process, in their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._budgeted: set[str] = set()  # offers with a budget, as last counted
        # the daily limits of the catalogue in use (None until one is): what the gauges
        # show, whatever catalogue a batch finishing after a reload was decided with
        self._limits: dict[str, int] | None = None
        self._budget_day: date | None = None  # the day those counts are of
        self._budget_timezone = "UTC"  # the catalogue's, whose days the budgets count
        # see shared_exposition: when last asked, texts it may write anew, the last one
        self._shared: tuple[float, float, bytes | None] = (0.0, FRESH_BURST, None)
        r = self.registry
        # process_start_time_seconds (and the process's CPU, memory and files, on Linux):
        # the alerts that count a series born above 0 do so only in a young process
        ProcessCollector(registry=r)
        self.events = Counter(
            "moments_events_total",
            "Touchpoint records handled (and touchpoints POST /v1/events refused, as invalid"
            " or erased).",
            ["type", "result"],
            registry=r,
        )
        self.events_misrouted = Counter(
            "moments_events_misrouted_total",
            "Touchpoints whose Kafka key is not their customer id (none, or another's).",
            registry=r,
        )
        self.event_to_decision = Histogram(
            "moments_event_to_decision_seconds",
            "From the event's ts to its decision being delivered to Kafka.",
            buckets=EVENT_AGE_BUCKETS,
            registry=r,
        )
        self.decisions = Counter(
            "moments_decisions_total", "Decisions emitted.", ["kind", "channel"], registry=r
        )
        self.decided = Children(self.decisions)
        self.outcomes = Counter(
            "moments_outcomes_total",
            "Offer outcomes the learner (on the worker that leads) claimed, once each (not"
            " again when read again or sent twice).",
            ["outcome"],
            registry=r,
        )
        for outcome in get_args(OutcomeKind):  # from 0: a first batch is an increase (a
            self.outcomes.labels(outcome)  # new leader's first dismissals, say)
        self.outcomes_accepted = Counter(
            "moments_outcomes_accepted_total",
            "Offer outcomes POST /v1/outcomes accepted and wrote to Kafka (the API; the"
            " learner counts them in moments_outcomes_total once it claims them).",
            ["outcome"],
            registry=r,
        )
        self.ingest_erased = Counter(
            "moments_ingest_erased_total",
            "Items POST /v1/events and /v1/outcomes left out, not written to Kafka, as"
            " their customer was erased, by route.",
            ["route"],
            registry=r,
        )
        self.ingest_unchecked = Counter(
            "moments_ingest_unchecked_total",
            "Items POST /v1/events and /v1/outcomes wrote to Kafka without their customer's"
            " erasure read (Redis could not say in time; the workers and the learner refuse"
            " an erased customer's), by route.",
            ["route"],
            registry=r,
        )
        self.offers_made = Counter(
            "moments_offers_made_total",
            "Offers in the next-best-offer decisions sent, by offer and channel.",
            ["offer", "channel"],
            registry=r,
        )
        self._made = Children(self.offers_made)
        self.offer_outcomes = Counter(
            "moments_offer_outcomes_total",
            "Outcomes the learner claimed, once each, of offers a stored decision made, by"
            " offer, channel and outcome.",
            ["offer", "channel", "outcome"],
            registry=r,
        )
        self._offer_outcomes = Children(self.offer_outcomes)
        # the per-offer series above go once their offer has been out of the catalogue
        # longer than its decisions can bring outcomes (streams.offer_series)
        self._offers_gone = OffersGone()
        self.feature_store = Histogram(
            "moments_feature_store_seconds",
            "Feature-store round trips.",
            ["op"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._store_ops = Children(self.feature_store)
        self.consumer_lag = Gauge(
            "moments_consumer_lag",
            "Records not yet committed, per partition.",
            ["topic", "partition"],
            registry=r,
        )
        self.http = Histogram(
            "moments_http_request_seconds",
            "HTTP requests.",
            ["route", "status", "method"],  # the route's method: GET and DELETE apart
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.http_requests = Children(self.http)
        self.connections_refused = Counter(
            "moments_http_connections_refused_total",
            "Client connections the API answered 503 as they opened: it held "
            "MOMENTS_API_MAX_CONNECTIONS already.",
            registry=r,
        )
        self.visitors_overflowed = Counter(
            "moments_api_visitors_overflowed_total",
            "Requests of keys bound to origins that took from the key's own bucket, not "
            "their visitor's: the API process held as many visitors' buckets as it may.",
            registry=r,
        )
        self.visitor_buckets = Gauge(
            "moments_api_visitor_buckets",
            "Rate buckets of page keys' visitors the API process holds (not yet refilled).",
            registry=r,
        )
        self.model_logloss = Gauge(
            "moments_model_logloss",
            "Progressive log loss of online models, over their newest 1,000 outcomes or examples.",
            ["model"],
            registry=r,
        )
        self.interventions_held_out = Counter(
            "moments_interventions_held_out_total",
            "Interventions raised for the hold-out group (recorded, not shown), by kind.",
            ["kind"],
            registry=r,
        )
        self.decisions_too_late = Counter(
            "moments_decisions_too_late_total",
            "Moments not decided (no offers) because their touchpoint was older than "
            "MOMENTS_OFFER_MAX_AGE_S when decided, by channel.",
            ["channel"],
            registry=r,
        )
        self.interventions_too_late = Counter(
            "moments_interventions_too_late_total",
            "Interventions not raised because their touchpoint was older than "
            "MOMENTS_INTERVENTION_MAX_AGE_S when decided, by kind.",
            ["kind"],
            registry=r,
        )
        self.dead_letters = Counter(
            "moments_dead_letters_total", "Records sent to the dead-letter topic.", registry=r
        )
        self.letters_refused = Counter(
            "moments_dead_letters_refused_total",
            "Dead letters the dead-letter topic refused whole (too large for its "
            "max.message.bytes), by outcome: reduced (written again reduced, the value cut "
            "short or left out) or dropped (refused reduced too: logged, not written).",
            ["outcome"],
            registry=r,
        )
        for outcome in ("reduced", "dropped"):  # from 0: a first refusal is an increase
            self.letters_refused.labels(outcome)
        self.retries = Counter(
            "moments_batch_retries_total",
            "Batches retried after an outage.",
            ["reason"],
            registry=r,
        )
        self.fallbacks = Counter(
            "moments_recommendation_fallbacks_total",
            "Recommendations answered with the safe default offers.",
            ["reason"],
            registry=r,
        )
        self.fell_back = Children(self.fallbacks)
        for reason in ("latency_budget", "store_unavailable"):
            self.fell_back(reason)
        self.refused_contacts = Counter(
            "moments_contacts_refused_total",
            "Decisions the store refused because another process's contact had taken a "
            "contact cap or cool-down of the customer past what the decision was taken "
            "within (each is decided again).",
            registry=r,
        )
        self.refused_budgets = Counter(
            "moments_budgets_refused_total",
            "Decisions the store refused because other processes had spent the daily offer "
            "budget they were taken within since it was read (each is decided again).",
            registry=r,
        )
        self.publish_failures = Counter(
            "moments_publish_failures_total",
            "Records that could not be written to Kafka after their answer was given.",
            ["topic"],
            registry=r,
        )
        self.publish_erased = Counter(
            "moments_publish_erased_total",
            "Records an API process had answered but Kafka had not taken when it knew their"
            " customer erased: not sent (again), so that none follows the erasure.",
            ["topic"],
            registry=r,
        )
        self.outbox_republished = Counter(
            "moments_outbox_republished_total",
            "Decisions published from the outbox of an API process that stopped without "
            "publishing them (killed outright, or Kafka away at its stop).",
            ["topic"],
            registry=r,
        )
        self.outbox_write_failures = Counter(
            "moments_outbox_write_failures_total",
            "Decisions published whose write to the API process's outbox failed (Redis full "
            "or a read-only replica; on a Redis Cluster, the node of the outbox's slot away), "
            "each once: they wait for Kafka in the process alone, lost should it be killed "
            "outright first.",
            registry=r,
        )
        self.learning = Counter(
            "moments_learning_outcomes_total",
            "Outcomes seen by the learner, by what became of them (relearned: read again by "
            "a learner restarted from a snapshot that lacked it, and learned again; counted "
            "as learned, or as what else became of it, when first claimed; relabelled: a "
            "later outcome of a shown offer learned, with a higher reward, which changed "
            "that example's reward (one shown offer is one example); superseded: a later "
            "outcome of one whose reward is not higher, not learned; not_first_offer: "
            "of an offer its decision listed below the first, counted but not learned).",
            ["result"],
            registry=r,
        )
        # from 0, what MomentsOutcomesSetAside counts: a first batch set aside (counted
        # at once, by the hundred) is an increase
        for result in ("invalid", "no_context", "corrupt_keys"):
            self.learning.labels(result)
        self.risk_learning = Counter(
            "moments_risk_examples_total",
            "Churn-risk examples seen by the risk learner, by what became of them (learned; "
            "relearned: read again by a learner restarted from a snapshot that lacked it; "
            "duplicate: a copy of one another record taught; learned_before: read again "
            "after the log lost its tail, in the model already; unusable: a figure not "
            "finite or out of range; unreadable: not a risk example; erased: of a customer "
            "erased, not learned).",
            ["result"],
            registry=r,
        )
        for result in ("unusable", "unreadable"):  # from 0, what MomentsRiskExamplesRefused
            self.risk_learning.labels(result)  # counts: a first batch refused is an increase
        self.risk_sweep = Counter(
            "moments_risk_sweep_snapshots_total",
            "Pending churn-risk snapshots the periodic sweep labelled, by label (unreadable: "
            "left out, their customer's keys could not be read).",
            ["label"],
            registry=r,
        )
        self.risk_sweep_rounds = Counter(
            "moments_risk_sweep_rounds_total",
            "Rounds of the churn-risk sweep (on the leading worker): ok, or failed (Redis or"
            " Kafka; the round is tried again at the next).",
            ["outcome"],
            registry=r,
        )
        for outcome in ("ok", "failed"):  # from 0: a first failure is an increase
            self.risk_sweep_rounds.labels(outcome)
        self.leading = Gauge(
            "moments_worker_leading",
            "1 on the worker that leads its group (it runs the learners and the churn-risk"
            " sweep), 0 on the others.",
            registry=r,
        )
        self.model_rocauc = Gauge(
            "moments_model_rocauc",
            "Progressive ROC AUC of online classifiers, over their newest 1,000 examples.",
            ["model"],
            registry=r,
        )
        self.model_drifts = Gauge(
            "moments_model_drifts", "Concept drifts detected (ADWIN) so far.", ["model"],
            registry=r,
        )  # fmt: skip
        self.model_fallback = Gauge(
            "moments_model_fallback",
            "1 while a model answers with its simple baseline (warming up or after drift).",
            ["model"],
            registry=r,
        )
        self.model_baseline_reason = Gauge(
            "moments_model_baseline_reason",
            "1 for why a model answers with its simple baseline: warming_up (no model of it"
            " has served yet: a new deployment's first month) or drift_detected (relearning"
            " after a drift); both 0 while the model serves.",
            ["model", "reason"],
            registry=r,
        )
        self.model_examples = Gauge(
            "moments_model_examples",
            "Examples a model has learned in all (kept in its snapshots, across restarts and"
            " leaders).",
            ["model"],
            registry=r,
        )
        self.learner_rewinds = Counter(
            "moments_learner_rewinds_total",
            "Times a learner found its position past the end of a partition of its topic "
            "(the log lost its tail: an unclean leader election, a Kafka restored from a "
            "backup) and read it again from its beginning, learning only what its model "
            "lacks.",
            ["model"],
            registry=r,
        )
        self.model_version = Gauge(
            "moments_model_version", "Version of the model snapshot in use.", ["model"],
            registry=r,
        )  # fmt: skip
        self.batch_size = Histogram(
            "moments_batch_size",
            "Touchpoints per handled batch.",
            buckets=(1, 5, 10, 25, 50, 100, 200, 500, 1000),
            registry=r,
        )

        self.recommendation_batch = Histogram(
            "moments_recommendation_batch_size",
            "Recommendation requests decided together in one batch.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=r,
        )
        self.catalogue_reloads = Counter(
            "moments_catalogue_reloads_total",
            "Offer catalogue files read again after a change: applied, or refused as invalid.",
            ["outcome"],
            registry=r,
        )
        for outcome in ("applied", "refused"):  # from 0: a first refusal is an increase
            self.catalogue_reloads.labels(outcome)
        self.catalogue_file_refused = Gauge(
            "moments_catalogue_file_refused",
            "1 while the offer catalogue file this process reads is refused (invalid, or"
            " unreadable): it decides with the last valid one, and a process starting now"
            " would exit 2; 0 once a file is applied or reads as the catalogue in use.",
            registry=r,
        )
        self.catalogue_file_refused.set(0)
        self.catalogue_info = Gauge(
            "moments_catalogue_info",
            "1 for the offer catalogue in use: its version, and a digest of its contents.",
            ["version", "digest"],
            registry=r,
        )  # fmt: skip
        self.offer_budget_spent = Gauge(
            "moments_offer_budget_spent",
            "Offers with a daily budget shown today (in the catalogue's timezone), as this process"
            " last counted them.",
            ["offer"],
            registry=r,
        )
        self.offer_budget_limit = Gauge(
            "moments_offer_budget_limit", "Daily budget of an offer (catalogue daily_limit).",
            ["offer"], registry=r,
        )  # fmt: skip
        self.catalogue_offers = Gauge(
            "moments_catalogue_offers", "Offers in the catalogue in use.", registry=r
        )
        self.alert_streams = Gauge(
            "moments_alert_streams_open", "Alert streams (screens) this API process serves.",
            registry=r,
        )  # fmt: skip
        self.alerts_held = Gauge(
            "moments_alerts_held_seconds",
            "How long the alerts of a partition of interventions have waited for a "
            "transaction a producer left open (the longest; 0: none).",
            registry=r,
        )
        self.dependency_up = Gauge(
            "moments_dependency_up",
            "1 while this process reaches the dependency (redis, kafka) as its /readyz says,"
            " 0 while it does not; set by the process's periodic look, no request of its own.",
            ["dependency"],
            registry=r,
        )
        self.redis_memory_used = Gauge(
            "moments_redis_memory_used_bytes",
            "Memory the fullest Redis node uses (INFO memory used_memory), as last read.",
            registry=r,
        )
        self.redis_memory_max = Gauge(
            "moments_redis_memory_max_bytes",
            "That node's maxmemory (0: no limit), as last read.", registry=r,
        )  # fmt: skip
        self.redis_evicting = Gauge(
            "moments_redis_evicting",
            "1 while a Redis node's maxmemory-policy lets it evict keys (not noeviction).",
            registry=r,
        )
        self.redis_forgetful = Gauge(
            "moments_redis_forgetful",
            "1 while a Redis node keeps no append-only file (a restart takes it back to its "
            "last snapshot), as last read.",
            registry=r,
        )
        self.redis_data_lost = Counter(
            "moments_redis_data_lost_total",
            "Restarts of Redis found to have lost the feature store's data (its layout mark "
            "gone, a node back empty, or another process found so), each counted once.",
            registry=r,
        )

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
