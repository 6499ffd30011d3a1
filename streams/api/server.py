"""The API server (aiohttp): its own process, scaled apart from the stream workers.

Started with ``moments api``. It reads features from Redis, decides with the same
policy as the workers, and writes to Kafka; it keeps no state another API process
could not rebuild, so any number of them can run behind a load balancer.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Container
from dataclasses import dataclass, field

from aiohttp import web
from aiokafka import AIOKafkaProducer

from agents.catalogue_holder import CatalogueHolder
from agents.fallback_contacts import FallbackContacts
from agents.learned_policy import ModelHolder
from agents.offer_policy import OfferPolicy
from agents.risk_watch import RiskHolder
from agents.web_withdrawals import WebWithdrawals
from feature_store import FeatureStore
from schemas import load_catalogue
from streams import topics
from streams.api import cors
from streams.api.alerts import AlertHub
from streams.api.auth import KeyRing
from streams.api.batch_decisions import DecisionCounters
from streams.api.body_budget import BodyBudget
from streams.api.body_cost import debt_floor
from streams.api.body_encoding import REQUEST_HANDLING
from streams.api.connection_cap import connection_cap
from streams.api.decision_outbox import DecisionOutbox
from streams.api.dependency_watch import DependencyLog, show_in_metrics
from streams.api.dev_key import dev_key_refusal, loopback
from streams.api.erased_items import CheckPause
from streams.api.errors import Handler, json_errors
from streams.api.kafka_health import KafkaHealth
from streams.api.origins import parse_origins
from streams.api.outbox_sweeper import OutboxSweeper
from streams.api.producer_renewal import RenewingProducer
from streams.api.protocol_errors import ANSWER_COUNTER, JsonErrorsAppRunner
from streams.api.publisher import KeyedPublisher
from streams.api.ratelimit import RateLimiter, RateLimits
from streams.api.recommender import Recommender
from streams.api.screen_erasures import CustomerRefs
from streams.api.stream_seats import StreamSeats, seats_per_key
from streams.api.visitors import Network, broad_networks, trusted_proxies
from streams.api.write_times import WriteTimes
from streams.catalogue_reload import CatalogueReloader
from streams.dependency_up import redis_answers
from streams.event_loop import loop_name
from streams.kafka_security import client_options, use_settings
from streams.key_secret import secret_weakness
from streams.listen_check import check_can_listen
from streams.metrics import Metrics
from streams.model_reload import ModelReloads
from streams.redis_memory_watch import RedisMemoryWatch
from streams.redis_restarts import RedisRestartWatch
from streams.settings import Settings, SettingsError
from streams.startup_line import startup_line
from streams.stop_watch import warn_if_still_stopping

log = logging.getLogger(__name__)
SHUTDOWN_S = 10.0  # for requests under way, once stopping
# then for the decisions answered to reach Kafka, and for the producer to stop: within an
# orchestrator's grace period (30 s in deploy/k8s, 5 s of which the preStop sleep takes)
DRAIN_S, PRODUCER_STOP_S = 8.0, 4.0
OUTBOX_STOP_S = 2.0  # removing what Kafka acknowledged from the outbox, at a stop
CLOSE_S = 1.0  # the alert fan-out's consumer, the Redis connections: closed, at a stop
# past the stop's bounds above, together (26 s, under the pods' 30 s grace period): what
# it still waits on is logged
STILL_STOPPING_S = SHUTDOWN_S + DRAIN_S + OUTBOX_STOP_S + PRODUCER_STOP_S + 2 * CLOSE_S + 1.0
# Requests with a key that is not valid share one bucket per process, so that keys
# cannot be guessed at the rate a valid key may use; valid keys are not affected.
WRONG_KEYS = "wrong keys"
WRONG_KEYS_PER_S = 10.0
WRONG_KEYS_BURST = 100
# Visitors' buckets (of keys bound to origins) held at once per process, some 300 bytes
# each; past them a new visitor takes from its key's own bucket, counted in
# moments_api_visitors_overflowed_total. A bucket is dropped once it has refilled.
VISITOR_BUCKETS = 100_000


@dataclass
class Api:
    """Everything the views need, built once per process."""

    settings: Settings
    store: FeatureStore
    producer: RenewingProducer
    publisher: KeyedPublisher
    recommender: Recommender
    policy: OfferPolicy
    catalogue: CatalogueHolder
    keys: KeyRing
    limiter: RateLimits  # per key, and per visitor of a key bound to origins
    wrong_keys: RateLimiter  # keys that are not valid, all as one (WRONG_KEYS)
    streams: StreamSeats  # alert streams open, per key
    metrics: Metrics
    alerts: AlertHub
    risk: RiskHolder
    kafka: KafkaHealth
    reloads: ModelReloads  # /readyz waits for its first check
    uploads: BodyBudget  # the request bodies being received, in bytes
    outages: DependencyLog = field(default_factory=DependencyLog)  # told to the log
    # the ingest's tombstone checks, paused a while after one Redis could not answer
    erasure_checks: CheckPause = field(default_factory=CheckPause)
    # the offers this process's fallback answers showed, per customer (their caps)
    fallback_contacts: FallbackContacts = field(default_factory=FallbackContacts)
    # the customers (keyed hashes) seen withdrawing web consent here: none in fallbacks
    web_withdrawals: WebWithdrawals = field(default_factory=WebWithdrawals)
    # how long the ingest's writes took: as long as an answer that writes nothing waits
    ingest_writes: WriteTimes = field(default_factory=WriteTimes)
    # whose X-Forwarded-For names a page key's visitor (MOMENTS_API_TRUSTED_PROXIES)
    trusted_proxies: tuple[Network, ...] = ()


API_KEY: web.AppKey[Api] = web.AppKey("api", Api)


def keyring(settings: Settings) -> KeyRing:
    if (weakness := secret_weakness(settings.key_secret)) is not None:  # hashes guessed
        log.warning("MOMENTS_KEY_SECRET %s; set a long random one in production", weakness)
    if settings.api_keys.strip():
        return KeyRing.parse(settings.api_keys)
    check_dev_key(settings)
    log.warning("MOMENTS_API_KEYS is not set: the development key, with every scope, is "
                "accepted; set keys in production")  # fmt: skip
    return KeyRing.development()


def rate_limits(settings: Settings, overflowed: Callable[[], None] = lambda: None) -> RateLimits:
    """The keys' buckets, and the buckets of the visitors of keys bound to origins, each
    into debt as deep as the costliest body costs (:func:`debt_floor`)."""
    body = settings.api_max_body_bytes
    rate, burst = settings.api_rate_per_s, settings.api_burst
    keys = RateLimiter(rate, burst, debt_floor(burst, body))
    rate = settings.api_visitor_rate_per_s or rate  # 0: the key's
    burst = settings.api_visitor_burst or burst
    visitors = RateLimiter(rate, burst, debt_floor(burst, body), VISITOR_BUCKETS)
    return RateLimits(keys, visitors, overflowed)


def note_visitors(settings: Settings, keys: KeyRing) -> None:
    """Warn that, with keys bound to origins served off loopback and no proxy trusted,
    every visitor reaching the API through a proxy or load balancer counts as one; and
    that a broad public network trusted lets the clients in it pick their own visitor."""
    broad = broad_networks(trusted_proxies(settings.api_trusted_proxies))
    if broad:  # the operator's own networks, no client's address
        log.warning("MOMENTS_API_TRUSTED_PROXIES trusts %s, broad public network(s): any "
                    "client there can name its own visitor in X-Forwarded-For, a new one "
                    "at each request, past the visitor rate limit of keys bound to origins; "
                    "name the proxies' own addresses", ", ".join(map(str, broad)))  # fmt: skip
    trusted = settings.api_trusted_proxies.strip()
    if keys.bound_origins() and not trusted and not loopback(settings.api_host):
        log.warning("keys bound to origins are rate-limited per visitor, by the address "
                    "that connects: behind a proxy or load balancer, set "
                    "MOMENTS_API_TRUSTED_PROXIES to its addresses, or every visitor through "
                    "it shares one visitor's bucket")  # fmt: skip


def check_dev_key(settings: Settings) -> None:
    """Raise :class:`SettingsError` (exit 2) when the API would take the development key
    where it must not (:mod:`streams.api.dev_key`)."""
    if (refusal := dev_key_refusal(settings)) is not None:
        raise SettingsError(refusal)


@web.middleware
async def timing(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        _observe(request, status, time.perf_counter() - started)


def _observe(request: web.Request, status: int, seconds: float) -> None:
    """One answer in ``moments_http_request_seconds``, under the route it matched."""
    route = request.match_info.route
    resource = route.resource
    name = resource.canonical if resource is not None else "unmatched"
    # the matched route's method, not the request's: a label of a few known values
    method = route.method if resource is not None else ""
    request.app[API_KEY].metrics.http_requests(name, str(status), method).observe(seconds)


def _answered_at_once(request: web.Request, status: int) -> None:
    """An answer sent before any middleware ran (a refusal before the body): counted,
    taking no time of its own."""
    _observe(request, status, 0.0)


def build_recommender(
    settings: Settings,
    store: FeatureStore,
    policy: OfferPolicy,
    publisher: KeyedPublisher,
    metrics: Metrics,
    outbox: DecisionOutbox | None = None,
    erased: Container[str] = frozenset(),
) -> Recommender:
    """The recommender as configured (latency budget, batching), counting in ``metrics``,
    its decisions kept in ``outbox`` until Kafka has them, and not sent for the customers
    ``erased`` lately (:attr:`AlertHub.erased_lately`)."""
    decisions_topic = settings.topic(topics.NEXT_BEST_OFFERS)
    return Recommender(
        store, policy, publisher, decisions_topic, settings.api_budget_ms / 1000,
        gather_s=settings.api_gather_ms / 1000, max_batch=settings.api_max_batch,
        counters=DecisionCounters(
            batch_decided=metrics.recommendation_batch.observe,
            contacts_refused=metrics.refused_contacts.inc,
            budgets_refused=metrics.refused_budgets.inc,
            budgets_counted=metrics.budgets_counted,
            publish_failed=metrics.publish_failures.labels(decisions_topic).inc,
            publish_erased=metrics.publish_erased.labels(decisions_topic).inc,
        ),
        outbox=outbox,
        erased=erased,
    )  # fmt: skip


def api_producer(settings: Settings) -> AIOKafkaProducer:
    """The API's Kafka producer: idempotent, so that a batch it sends again (its
    acknowledgment lost) is written once (see streams.api.producer_renewal)."""
    return AIOKafkaProducer(
        **client_options(), bootstrap_servers=settings.kafka_bootstrap, acks="all",
        enable_idempotence=True, linger_ms=1,
        request_timeout_ms=round(settings.api_producer_timeout_s * 1000),
    )  # fmt: skip


def create_api(settings: Settings, store: FeatureStore | None = None) -> web.Application:
    from streams.api import views
    from streams.configured import build_policy, build_store

    use_settings(settings)  # every Kafka client of the process
    metrics = Metrics()
    catalogue = CatalogueHolder(load_catalogue(settings.catalogue_path))
    metrics.catalogue_in_use(catalogue.current)
    app = web.Application(
        middlewares=[timing, json_errors], client_max_size=settings.api_max_body_bytes,
        handler_args=REQUEST_HANDLING,
    )  # fmt: skip
    app[ANSWER_COUNTER] = _answered_at_once  # refusals before the body: no middleware sees them

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        holder = ModelHolder()
        risk = RiskHolder()
        producer = RenewingProducer(functools.partial(api_producer, settings))
        await producer.start()
        feature_store = store or build_store(settings, observe=metrics.store_op)
        hub = AlertHub(settings.kafka_bootstrap, settings.topic(topics.INTERVENTIONS),
                       settings.topic(topics.CUSTOMER_ERASURES), feature_store.erased,
                       CustomerRefs(settings.key_secret.encode()))  # fmt: skip
        await hub.start()
        policy = build_policy(settings, catalogue, holder)
        kafka = KafkaHealth(hub.last_answer)
        publisher = KeyedPublisher(producer, settings.api_publish_linger_ms / 1000, kafka.sent)
        outbox = DecisionOutbox(feature_store.outboxes, unwritten=metrics.outbox_write_failures.inc)
        recommender = build_recommender(settings, feature_store, policy, publisher, metrics,
                                        outbox, hub.erased_lately)  # fmt: skip
        decisions_topic = settings.topic(topics.NEXT_BEST_OFFERS)
        sweeper = OutboxSweeper(
            feature_store.outboxes, outbox.process, feature_store.decisions.publishable, publisher,
            decisions_topic, metrics.outbox_republished.labels(decisions_topic).inc,
        )  # fmt: skip
        outbox.start()
        seats = StreamSeats(settings.api_max_streams_per_key)
        metrics.alert_streams.set_function(lambda: seats.open)
        metrics.alerts_held.set_function(hub.held_s)
        limits = rate_limits(settings, metrics.visitors_overflowed.inc)
        keys = keyring(settings)
        note_visitors(settings, keys)
        metrics.visitor_buckets.set_function(lambda: len(limits.visitors))
        app[API_KEY] = Api(
            settings=settings,
            store=feature_store,
            producer=producer,
            publisher=publisher,
            recommender=recommender,
            policy=policy,
            catalogue=catalogue,
            keys=keys,
            limiter=limits,
            wrong_keys=RateLimiter(WRONG_KEYS_PER_S, WRONG_KEYS_BURST),
            streams=seats,
            metrics=metrics,
            alerts=hub,
            risk=risk,
            kafka=kafka,
            reloads=ModelReloads(_Held(feature_store, holder, risk, metrics)),
            uploads=BodyBudget(settings.api_body_budget_bytes),
            trusted_proxies=trusted_proxies(settings.api_trusted_proxies),
        )
        hub.also_forget.append(app[API_KEY].fallback_contacts.forget)  # every erasure heard
        # and those a fallback's check found erased (erased before this process heard)
        recommender.also_forget.append(app[API_KEY].fallback_contacts.forget)
        background = [
            asyncio.create_task(app[API_KEY].reloads.keep_fresh()),
            asyncio.create_task(RedisMemoryWatch(feature_store, metrics).keep_watching()),
            asyncio.create_task(RedisRestartWatch(feature_store, metrics).keep_watching()),
            asyncio.create_task(sweeper.keep_sweeping()),
        ]
        redis_ok = functools.partial(redis_answers, feature_store)
        outages = app[API_KEY].outages
        watch = outages.keep_watching(redis_ok, kafka.down_since)
        show_in_metrics(metrics, outages, kafka)
        background.append(asyncio.create_task(watch))
        reloader = CatalogueReloader(settings.catalogue_path, catalogue, metrics.catalogue_in_use)
        metrics.catalogue_file_read(lambda: reloader.file_refused)
        reloader.on_hangup(asyncio.get_running_loop())
        reloader.check_logged(written=True)  # a SIGHUP while it started was ignored: read now
        if settings.catalogue_check_s > 0:
            background.append(asyncio.create_task(_keep_catalogue_fresh(settings, reloader)))
        # No recommendation from the empty models the process starts with while snapshots
        # are published: serve once their first load is tried (/readyz waits for it too).
        await app[API_KEY].reloads.first_tried()
        yield
        for task in background:
            task.cancel()
        # each step runs whatever failed before it: the decisions answered reach Kafka
        async with contextlib.AsyncExitStack() as stopping:
            stopping.push_async_callback(
                _stop_within, app[API_KEY].store.close, CLOSE_S, "the Redis connections"
            )
            stopping.push_async_callback(
                _stop_within, producer.stop, PRODUCER_STOP_S, "the Kafka producer"
            )
            stopping.push_async_callback(_stop_within, hub.stop, CLOSE_S, "the alert fan-out")
            # what Kafka acknowledged leaves the outbox; the rest stays for another process
            stopping.push_async_callback(_stop_within, outbox.stop, OUTBOX_STOP_S, "the outbox")
            await recommender.drain(within_s=DRAIN_S)

    app.cleanup_ctx.append(lifecycle)
    views.add_routes(app)
    if settings.api_cors_origins:
        cors.install(app, cors.CorsPolicy(parse_origins(settings.api_cors_origins)))
    return app


@dataclass(frozen=True)
class _Held:
    """What the API scores with, reloaded from the published snapshots (see
    streams.model_reload)."""

    store: FeatureStore
    holder: ModelHolder
    risk: RiskHolder
    metrics: Metrics


async def _stop_within(stop: Callable[[], Awaitable[None]], seconds: float, what: str) -> None:
    """``stop()``, given up after ``seconds`` (a producer flushing to a broker away, a
    consumer closing against a broker that does not answer)."""
    try:
        async with asyncio.timeout(seconds):
            await stop()
    except TimeoutError:
        log.warning("%s had not stopped %g s on; not waiting longer", what, seconds)


async def _keep_catalogue_fresh(settings: Settings, reloader: CatalogueReloader) -> None:
    """Decide with the catalogue file's newest valid version (see streams.catalogue_reload)."""
    while True:
        await asyncio.sleep(settings.catalogue_check_s)
        reloader.check_logged()


async def serve(settings: Settings) -> int:
    """Run the API until SIGTERM or SIGINT (0), or until a Redis that could not be reached
    at start turns out to hold a layout or key secret it must not write with (2)."""
    from streams.api.probe_port import probe_runner, probes_at, serve_probes
    from streams.redis_checks import (
        check_layout_once_redis_answers,
        check_redis_layout,
        warn_about_redis_setup,
    )
    from streams.topics import ensure_topics

    check_dev_key(settings)  # before Kafka and Redis are asked anything
    check_can_listen(settings.api_host, settings.api_port, "MOMENTS_API_HOST / MOMENTS_API_PORT")
    if settings.api_probe_port:
        check_can_listen(settings.api_host, settings.api_probe_port,
                         "MOMENTS_API_HOST / MOMENTS_API_PROBE_PORT")  # fmt: skip
    await ensure_topics(settings)
    await warn_about_redis_setup(settings)
    layout = await check_redis_layout(settings)
    app = create_api(settings)
    app.on_shutdown.append(_end_alert_streams)
    most = connection_cap(settings.api_max_connections, bodies=settings.api_body_budget_bytes)

    def turned_away() -> None:  # the API's state is there once it started up
        app[API_KEY].metrics.connections_refused.inc()

    # Requests under way get this long once stopping (an orchestrator kills the process
    # after its grace period, 30 s in deploy/k8s); the alert streams end at once.
    runner = JsonErrorsAppRunner(
        app, access_log=None, stop_within_s=SHUTDOWN_S,
        keepalive_timeout=settings.api_idle_timeout_s,
        max_connections=most, on_refused=turned_away, head_timeout_s=settings.api_head_timeout_s,
    )  # fmt: skip
    await runner.setup()  # (the API's state is there from here on)
    seats = app[API_KEY].streams
    seats.per_key = seats_per_key(settings.api_max_streams_per_key, most)
    if seats.per_key < settings.api_max_streams_per_key:
        log.warning("each key may hold %d alert streams on this process, not the %d of "
                    "MOMENTS_API_MAX_STREAMS_PER_KEY: half its %d connections at most",
                    seats.per_key, settings.api_max_streams_per_key, most)  # fmt: skip
    site = web.TCPSite(runner, settings.api_host, settings.api_port)
    await site.start()
    # the probes and the scrape, on a port the cap above does not count (its own, small)
    probes = None
    if settings.api_probe_port:
        probes = probe_runner(app[API_KEY], settings.api_head_timeout_s)
        await serve_probes(probes, settings.api_host, settings.api_probe_port)
    # Everything built at start-up lives as long as the process: keep it out of the
    # collector's full passes, which would otherwise stall requests for milliseconds.
    gc.collect()
    gc.freeze()
    log.info(
        "%s, on http://%s:%d (%d connections at most), metrics at /metrics, %s (event loop: %s)",
        startup_line("API", settings), settings.api_host, settings.api_port, most,
        probes_at(settings), loop_name(asyncio.get_running_loop()),
    )  # fmt: skip
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):  # what orchestrators and Ctrl-C send
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stopping.set)
    refusals: list[Exception] = []

    def refused(exc: Exception) -> None:  # a layout or key secret it must not write with
        refusals.append(exc)
        stopping.set()

    late_check = None
    if layout == "unreachable":
        late_check = asyncio.create_task(check_layout_once_redis_answers(settings, refused))
    try:
        await stopping.wait()
        log.info("Moments API stopping: answering what is under way, then publishing")
    finally:
        # each step has its bound (together under the pods' grace period): past them, the
        # log says what it still waits on
        still = warn_if_still_stopping(loop, STILL_STOPPING_S, "Moments API")
        if late_check is not None:
            late_check.cancel()
        await runner.cleanup()  # drains the recommender, flushes decisions to Kafka
        if probes is not None:  # probed until then: an orchestrator sees it alive, stopping
            await probes.cleanup()
        still.cancel()
    return 2 if refusals else 0


async def _end_alert_streams(app: web.Application) -> None:
    app[API_KEY].alerts.close_all()
