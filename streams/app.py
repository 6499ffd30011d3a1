"""The Moments Faust app: topics, the touchpoints agent, health and metrics pages."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import faust
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from prometheus_client import CollectorRegistry, Histogram

from agents.catalogue_holder import CatalogueHolder
from agents.interventions import InterventionRules
from agents.learned_policy import ModelHolder
from agents.risk_watch import RiskHolder
from agents.touchpoint_agent import Outlets, register_touchpoint_agent
from agents.touchpoint_handler import TouchpointHandler
from feature_store import FeatureStore
from schemas import load_catalogue
from schemas.risk import RiskExample, encode_risk_example
from streams import topics
from streams.catalogue_reload import CatalogueReloader
from streams.committed_worker import use_committed_reads
from streams.configured import build_policy, build_store, intervention_holdout
from streams.consumer_lag import register_lag_timer
from streams.dependency_up import LOOK_EVERY_S, redis_answers
from streams.kafka_security import faust_credentials, use_settings
from streams.key_secret import secret_weakness
from streams.learner import learn_while_leader
from streams.metric_families import LATENCY_BUCKETS
from streams.metrics import Metrics
from streams.model_reload import ModelReloads
from streams.offer_learner import OfferLearner
from streams.redis_memory_watch import CHECK_EVERY_S, RedisMemoryWatch
from streams.redis_restarts import RedisRestartWatch
from streams.risk_learner import RiskLearner
from streams.risk_sweeper import sweep_round
from streams.settings import Settings
from streams.worker_pages import web_options
from streams.worker_readiness import (
    coordinator_answers,
    group_coordinator,
    kafka_readiness,
    watch_coordinator,
)

log = logging.getLogger(__name__)
KAFKA_DELIVERY_TIMEOUT_S = 30.0  # see create_app


@dataclass
class Moments:
    """Everything one worker process runs."""

    settings: Settings
    app: Any  # faust.App
    metrics: Metrics
    store: FeatureStore
    catalogue: CatalogueHolder
    holder: ModelHolder
    risk: RiskHolder
    risk_examples: Any  # the Faust topic the sweep sends its examples to


def _raw_topic(app: Any, name: str) -> Any:
    return app.topic(
        name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )


def create_app(settings: Settings) -> Moments:
    """Build the app; raises :class:`schemas.CatalogueError` for a bad catalogue."""
    use_settings(settings)  # every Kafka client of the process, as the Faust app's
    catalogue = CatalogueHolder(load_catalogue(settings.catalogue_path))
    if (weakness := secret_weakness(settings.key_secret)) is not None:
        log.warning("MOMENTS_KEY_SECRET %s; set a long random one in production", weakness)
    metrics = Metrics()
    store = build_store(settings, observe=metrics.store_op)
    datadir = Path(settings.data_dir) / f"{settings.app_id}-{settings.web_port}"
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        broker=settings.faust_broker,
        store="memory://",
        autodiscover=False,
        datadir=str(datadir),
        web_enabled=True,
        web_host=settings.web_host,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        **web_options(),  # Moments' pages only: none of Faust's (/router/<name>/ logged it)
        topic_replication_factor=settings.topic_replication,
        topic_partitions=settings.topic_partitions,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger_ms=1,
        # how long a record may wait for Kafka before its sending fails (Faust's default,
        # 20 minutes, kept a batch waiting that long in an outage, neither retried, nor
        # counted, nor logged): it fails, and the batch is retried as in any outage
        producer_request_timeout=KAFKA_DELIVERY_TIMEOUT_S,
        broker_commit_every=1000,
        broker_session_timeout=settings.kafka_session_timeout_s,
        broker_heartbeat_interval=max(settings.kafka_session_timeout_s / 4, 0.5),
        broker_commit_interval=1.0,
        broker_credentials=faust_credentials(settings),
        # no Faust tables: no standby replicas, so that the assignor balances the group
        # (with one asked for, a worker joining a balanced group could get no partition)
        table_standby_replicas=0,
    )
    use_committed_reads(app)  # an aborted transaction's touchpoints are no events
    app.monitor = PrometheusMonitor(metrics=faust_sensors(metrics))
    source = _raw_topic(app, settings.topic(topics.TOUCHPOINTS))
    risk_examples = _raw_topic(app, settings.topic(topics.RISK_EXAMPLES))
    outlets = Outlets(
        decisions=_raw_topic(app, settings.topic(topics.NEXT_BEST_OFFERS)),
        interventions=_raw_topic(app, settings.topic(topics.INTERVENTIONS)),
        risk_examples=risk_examples,
        dead_letters=_raw_topic(app, settings.topic(topics.TOUCHPOINTS_DLQ)),
        held_out=_raw_topic(app, settings.topic(topics.INTERVENTIONS_HELD_OUT)),
    )
    holder = ModelHolder()
    risk = RiskHolder()
    policy = build_policy(settings, catalogue, holder)
    handler = TouchpointHandler(
        store,
        policy,
        max_attempts=settings.max_attempts,
        max_future=timedelta(seconds=settings.max_future_skew_s),
        rules=InterventionRules(
            high_value=settings.high_value,
            max_age_s=settings.intervention_max_age_s,
            currency=settings.money.currency,
        ),
        risk=risk,
        risk_threshold=settings.risk_threshold,
        holdout=intervention_holdout(settings),
        offer_max_age_s=settings.offer_max_age_s,
    )
    moments = Moments(settings, app, metrics, store, catalogue, holder, risk, risk_examples)
    reloads = ModelReloads(moments)  # of holder and risk, from their published snapshots
    register_touchpoint_agent(
        app,
        source,
        outlets,
        handler,
        metrics,
        batch_size=settings.batch_size,
        batch_within=settings.batch_within_s,
        max_attempts=settings.max_attempts,
        models_ready=reloads.first_tried,  # not with the empty models it starts with
        # told to stop, it waits out no outage (see agents.touchpoint_agent)
        stopping=lambda: bool(app.should_stop),
        sleep=app.sleep,  # ends early when the worker is told to stop
        partition_of=_partition_of(app),
    )
    _register_pages(moments)
    register_lag_timer(moments.app, moments.metrics, moments.settings)
    _register_redis_watches(moments)
    _register_learning(moments, reloads)
    _register_catalogue_reload(moments)
    return moments


def _partition_of(app: faust.App) -> Callable[[str, bytes], int | None]:
    """The partition the default partitioner gives a key on a topic, as far as the
    worker's consumer knows the topic's partitions (``None`` before it does)."""

    def partition_of(topic: str, key: bytes) -> int | None:
        count = _partitions_known(app, topic)
        return topics.keyed_partition(key, count) if count else None

    return partition_of


def _partitions_known(app: faust.App, topic: str) -> int | None:
    """How many partitions ``topic`` has, as the worker's Kafka client knows from its
    metadata (every member of the group; Faust's ``topic_partitions`` reads a table only
    the group's leader fills, so the other workers never knew)."""
    try:  # aiokafka's consumer, where Faust keeps it (not in Faust's types)
        thread: Any = getattr(app.consumer, "_thread")  # noqa: B009
        found = thread._consumer._client.cluster.partitions_for_topic(topic)
    except (AttributeError, KeyError):  # not started yet, another Faust, or the topic
        return None  # dropped from the metadata as it was read: not known
    return len(found) if found else None


def faust_sensors(metrics: Metrics) -> Any:
    """Faust's own sensors (messages, events, commits, sends, rebalances) in our registry.
    Its histograms are in milliseconds; they are kept in seconds, Prometheus' base unit,
    as ``moments_faust_<what>_seconds``. Its events' runtime is not kept: Faust times an
    event only as a stream hands it on, and the workers take theirs in batches
    (:func:`agents.touchpoint_batches.take_batches`), so it stayed empty."""
    faust_metrics = FaustMetrics.create(CollectorRegistry(), "moments_faust")
    in_seconds: dict[str, Any] = {}
    for field, collector in zip(faust_metrics._fields, faust_metrics, strict=True):
        if field == "events_runtime_latency":
            in_seconds[field] = _Unkept()
        elif isinstance(collector, Histogram):
            in_seconds[field] = _MillisecondsToSeconds(
                Histogram(
                    f"moments_faust_{field}_seconds",
                    f"Faust: {collector._documentation.removesuffix(' in ms')} (seconds).",
                    buckets=LATENCY_BUCKETS,
                    registry=metrics.registry,
                )
            )
        else:
            metrics.registry.register(collector)
    return faust_metrics._replace(**in_seconds)


class _Unkept:
    def observe(self, milliseconds: float) -> None:
        pass


class _MillisecondsToSeconds:
    def __init__(self, histogram: Histogram) -> None:
        self._histogram = histogram

    def observe(self, milliseconds: float) -> None:
        self._histogram.observe(milliseconds / 1000)


def _register_learning(moments: Moments, reloads: ModelReloads) -> None:
    app = moments.app
    learner = OfferLearner(
        moments.store,
        moments.holder,
        moments.metrics,
        moments.settings.kafka_bootstrap,
        moments.settings.topic(topics.OFFER_OUTCOMES),
        _raw_topic(app, moments.settings.topic(topics.OFFER_OUTCOMES_DLQ)).send,
        offered=lambda: {o.offer_id for o in moments.catalogue.current.offers},
        packed=moments.settings.model_snapshot_figures == "packed",
        kept=moments.settings.offer_model_kept_per_1000,
        max_future=timedelta(seconds=moments.settings.max_future_skew_s),
    )

    risk_learner = RiskLearner(
        moments.store,
        moments.risk,
        moments.metrics,
        moments.settings.kafka_bootstrap,
        moments.settings.topic(topics.RISK_EXAMPLES),
    )

    @app.task  # type: ignore[untyped-decorator]
    async def learn() -> None:
        await learn_while_leader(learner, app.is_leader, restarted=restarted)

    @app.task  # type: ignore[untyped-decorator]
    async def learn_risk() -> None:
        await learn_while_leader(risk_learner, app.is_leader, restarted=restarted)

    def restarted(reason: str) -> None:
        moments.metrics.retries.labels(reason).inc()

    @app.timer(2.0)  # type: ignore[untyped-decorator]
    async def show_leading() -> None:  # none leading: no learning (MomentsNoWorkerLeads)
        moments.metrics.leading.set(1.0 if app.is_leader() else 0.0)

    @app.timer(2.0)  # type: ignore[untyped-decorator]
    async def watch_group_coordinator() -> None:  # for /readyz (see worker_readiness)
        coordinator = group_coordinator(app)
        watch_coordinator(coordinator)
        if coordinator is not None:  # (none to show yet: the gauge says nothing)
            silent_for_s = moments.settings.kafka_session_timeout_s
            up = coordinator_answers(coordinator, silent_for_s)
            moments.metrics.dependency_seen("kafka", up)

    @app.timer(moments.settings.risk_sweep_interval_s, on_leader=True)  # type: ignore[untyped-decorator]
    async def sweep_risk() -> None:
        async def send(examples: list[RiskExample]) -> None:
            sent = [await moments.risk_examples.send(key=None, value=encode_risk_example(e))
                    for e in examples]  # fmt: skip
            await asyncio.gather(*sent)

        def skipped(reason: str) -> None:  # retried at the next round
            moments.metrics.retrying(f"risk_sweep:{reason}")

        swept = await sweep_round(moments.store, send, datetime.now(UTC), skipped)
        moments.metrics.risk_sweep_rounds.labels("failed" if swept is None else "ok").inc()
        if swept is None:
            return
        moments.metrics.risk_sweep.labels("lapsed").inc(swept.lapsed)
        moments.metrics.risk_sweep.labels("not_lapsed").inc(swept.not_lapsed)
        moments.metrics.risk_sweep.labels("unreadable").inc(swept.unreadable)
        log.info("churn-risk sweep: %d pending, %d lapsed, %d not lapsed, %d labelled by a "
                 "touchpoint meanwhile, %d erased meanwhile, %d whose keys could not be "
                 "read", swept.pending, swept.lapsed, swept.not_lapsed,
                 swept.settled_elsewhere, swept.erased, swept.unreadable)  # fmt: skip

    @app.task  # type: ignore[untyped-decorator]
    async def reload_model() -> None:  # at once (the agent waits for it), then every 2 s
        await reloads.keep_fresh()


def _register_catalogue_reload(moments: Moments) -> None:
    settings, metrics = moments.settings, moments.metrics
    metrics.catalogue_in_use(moments.catalogue.current)
    reloader = CatalogueReloader(
        settings.catalogue_path, moments.catalogue, metrics.catalogue_in_use
    )
    metrics.catalogue_file_read(lambda: reloader.file_refused)

    @moments.app.task  # type: ignore[untyped-decorator]
    async def reload_catalogue_on_hangup() -> None:  # once, on the worker's own loop
        reloader.on_hangup(asyncio.get_running_loop())
        reloader.check_logged(written=True)  # a SIGHUP while the worker started was ignored

    if settings.catalogue_check_s > 0:

        @moments.app.timer(settings.catalogue_check_s)  # type: ignore[untyped-decorator]
        async def reload_catalogue() -> None:
            reloader.check_logged()


def _register_redis_watches(moments: Moments) -> None:
    watch = RedisMemoryWatch(moments.store, moments.metrics)
    restarts = RedisRestartWatch(moments.store, moments.metrics)

    @moments.app.timer(CHECK_EVERY_S)  # type: ignore[untyped-decorator]
    async def watch_redis_memory_and_restarts() -> None:
        await watch.check()
        await restarts.check()

    @moments.app.timer(LOOK_EVERY_S)  # type: ignore[untyped-decorator]
    async def watch_redis_answers() -> None:  # as /readyz: a PING, bounded
        moments.metrics.dependency_seen("redis", await redis_answers(moments.store))


def _register_pages(moments: Moments) -> None:
    app = moments.app

    @app.page("/metrics")  # type: ignore[untyped-decorator]
    async def metrics_page(web: Any, request: Any) -> Any:
        # throttled as the API's: the text is written on the event loop the batches need
        text = moments.metrics.shared_exposition()
        return web.bytes(text, content_type="text/plain; version=0.0.4")

    @app.page("/healthz")  # type: ignore[untyped-decorator]
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/readyz")  # type: ignore[untyped-decorator]
    async def readyz(web: Any, request: Any) -> Any:
        checks: dict[str, str] = {}
        try:  # bounded: a frozen Redis must not hold the answer past a probe's timeout
            checks["redis"] = "ok" if await moments.store.ping() else "down"
        except Exception as exc:
            checks["redis"] = f"down: {type(exc).__name__}"
        checks["kafka"] = kafka_readiness(  # (watch_group_coordinator watches it)
            app.rebalancing, bool(app.consumer.assignment()), group_coordinator(app),
            silent_for_s=moments.settings.kafka_session_timeout_s,
        )  # fmt: skip
        ready = all(v == "ok" for v in checks.values())
        return web.json(
            {"status": "ready" if ready else "not_ready", "checks": checks},
            status=200 if ready else 503,
        )
