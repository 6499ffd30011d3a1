"""The Prometheus metric families of the contract (prefix ``moments_``), registered in the
order a scrape lists them; no customer ids in labels. The alerts, the dashboards and the
docs read them by these names, labels and buckets."""

from __future__ import annotations

from typing import get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from schemas.outcomes import OutcomeKind

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
# a touchpoint's age at its decision: also minutes, while a worker catches up after an
# outage (past 10 s, a p99 read from LATENCY_BUCKETS alone would say 10 s however late)
EVENT_AGE_BUCKETS = (*LATENCY_BUCKETS, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


class MetricFamilies:
    """Every metric family of a process, in its registry, in the order a scrape lists them."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
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
        self.offer_outcomes = Counter(
            "moments_offer_outcomes_total",
            "Outcomes the learner claimed, once each, of offers a stored decision made, by"
            " offer, channel and outcome.",
            ["offer", "channel", "outcome"],
            registry=r,
        )
        self.feature_store = Histogram(
            "moments_feature_store_seconds",
            "Feature-store round trips.",
            ["op"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
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
