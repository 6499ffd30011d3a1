"""HTTP views: decode and check the request, call the logic, write, answer. Here the
routes (:func:`add_routes`), recommendations, the offer catalogue and the service pages;
posting events and outcomes in :mod:`streams.api.ingest_views`, a customer's profile,
export and erasure in :mod:`streams.api.customer_views`, the key and customer id checks
in :mod:`streams.api.request_checks`."""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from datetime import UTC, datetime

import msgspec
from aiohttp import web

from agents.budget_reads import spent_today
from agents.fallback_offers import fallback_decision
from agents.offer_budget import budget_day
from feature_store import StoreFull, StoreRefused, StoreUnavailable
from schemas import NextBestOffer
from schemas.catalogue import OFFER_CHANNELS
from streams.api.alert_stream import alerts_stream
from streams.api.auth import check_channel
from streams.api.catalogue_listing import catalogue_listing
from streams.api.console_page import ConsolePage
from streams.api.customer_views import delete_customer, export_customer, get_customer
from streams.api.errors import ApiError, json_response
from streams.api.ingest_views import post_events, post_outcomes
from streams.api.openapi import openapi_document
from streams.api.protocol_errors import expect_continue
from streams.api.request_checks import (
    api_of,
    authorise,
    continue_for,
    customer_id_of,
    query_once,
)
from streams.api.server import Api

# Any customer id POST /v1/events takes, braces included ("{3F2504E0-...}"); aiohttp's
# default pattern would leave such a customer unreachable (404)
CUSTOMER = "/v1/customers/{customer_id:[^/]+}"
_CHANNEL_FAULT = f"channel must be one of {', '.join(OFFER_CHANNELS)}"
log = logging.getLogger(__name__)


# --- recommendations ---------------------------------------------------------------------


def _fallback(api: Api, customer_id: str, channel: str, limit: int, reason: str) -> NextBestOffer:
    """The default offers, screened by what this process's fallbacks showed the customer
    (recorded by the caller, with no await between: a burst is screened one by one)."""
    control_group = api.policy.contact_policy.control_group
    catalogue, now = api.catalogue.current, datetime.now(UTC)
    shown = api.fallback_contacts.history(customer_id, now, catalogue.contact_policy.timezone)
    # a web withdrawal this process took (POST /v1/events): nothing on the web
    seen = api.web_withdrawals
    withdrawn = (
        channel == "web" and len(seen) > 0 and seen.withdrawn(api.store.pseudonym(customer_id))
    )
    return fallback_decision(customer_id, channel, limit, reason, catalogue, control_group,
                             now, shown, withdrawn)  # fmt: skip


# What a decision says of its customer beyond the offers: their segment, the model's input
# (value, experience, tastes) and the reasons (consent withdrawn, quiet hours, fatigue).
# Answered only to keys that may read profiles: a key web pages use, visible to their
# visitors, would tell anyone who names a customer. ``reasons`` is a field of every
# decision in the contract: they get it empty. ``control`` (another) is answered to all:
# the hold-out is drawn by a hash of the id, and a page must tell "held out" from
# "nothing to offer".
EXPLANATION = ("segment", "context")


def limit_asked(raw: str) -> int:
    """The number ``limit`` is written as: plain ASCII digits, leading zeros read as the
    number; anything else (int() takes "1_0", " 5", "+5" and other scripts' digits) 0.

    >>> [limit_asked(raw) for raw in ("3", "010", "0000003", "1_0", " 5", "+5", "٣", "")]
    [3, 10, 3, 0, 0, 0, 0, 0]
    """
    return int(raw) if re.fullmatch(r"[0-9]{1,8}", raw) else 0


async def recommendations(request: web.Request) -> web.Response:
    key = authorise(request, "recommend")
    api = api_of(request)
    customer_id = customer_id_of(request, to_act_on=True)
    channel = query_once(request, "channel", "web") or ""
    if channel not in OFFER_CHANNELS:
        raise ApiError(400, "invalid_channel", _CHANNEL_FAULT)
    # a key bound to other channels (a page's, to the web) decides nothing here: an offer
    # by email, text or call would keep a made-up id a month and spend a real customer's
    # caps and the offers' budgets
    check_channel(key, channel)
    limit = limit_asked(query_once(request, "limit", "3") or "")
    if not 1 <= limit <= 10:
        raise ApiError(400, "invalid_limit", "limit must be a whole number from 1 to 10")
    erased = False
    asked_at = asyncio.get_running_loop().time()
    try:
        decided = await api.recommender.recommend(customer_id, channel, limit)
        if decided is None:  # erased: answered as anyone unknown, nothing kept or sent,
            erased = True  # but for the withdrawals their erasure kept
            decided = await api.recommender.for_erased(customer_id, channel, limit, asked_at)
        decision = decided
        api.outages.writes_refused(False)
    except TimeoutError:  # out of time: Redis away (frozen, not refusing), or too busy
        api.outages.look_now()
        reason = "store_unavailable" if api.outages.away("redis") else "latency_budget"
        decision = _fallback(api, customer_id, channel, limit, reason)
    except StoreUnavailable as exc:
        api.outages.look_now()
        if isinstance(exc, (StoreFull, StoreRefused)):  # Redis answers: its look says naught
            api.outages.writes_refused(True)
        decision = _fallback(api, customer_id, channel, limit, "store_unavailable")
    except Exception as exc:  # a reply or a decision the batch could not take: never a 500
        # by its kind alone: an error's message may quote what it failed on
        log.warning("a recommendation failed (%s); answering with the default offers",
                    type(exc).__name__)  # fmt: skip
        decision = _fallback(api, customer_id, channel, limit, "error")
    if decision.fallback and customer_id in api.alerts.erased_lately:
        erased = True  # the tombstone went unread: what this process knows of erasures
    if not erased:
        if decision.fallback:  # shown all the same, so published all the same
            api.metrics.fell_back(decision.reasons[0].split(":", 1)[1]).inc()
            api.recommender.publish_soon(decision)
            api.fallback_contacts.record(decision)  # for the next fallbacks' caps
        api.metrics.decided("next_best_offer", channel).inc()
        api.metrics.offers_in(decision)
    body = msgspec.to_builtins(decision)
    if "profile-read" not in key.scopes:
        for field in EXPLANATION:
            body.pop(field, None)
        body["reasons"] = []
    # its titles from the catalogue it was decided with (one may have been loaded since)
    catalogue = api.catalogue.of_version(decision.catalogue_version)
    for offer in body["offers"]:
        found = catalogue.by_id(offer["offer_id"])
        if found is not None:
            offer["title"] = found.title
    return json_response(body)


# --- the offer catalogue -----------------------------------------------------------------


async def offers(request: web.Request) -> web.Response:
    """The catalogue in use (for titles and scripts beside recommendations), with which
    offers may be made now and how much of each daily budget is spent."""
    authorise(request, "recommend")
    api = api_of(request)
    channel = query_once(request, "channel")
    if channel is not None and channel not in OFFER_CHANNELS:
        raise ApiError(400, "invalid_channel", _CHANNEL_FAULT)
    catalogue = api.catalogue.current
    now = datetime.now(UTC)
    shown: dict[str, int] | None = {}
    unreadable: set[str] = set()  # offers whose count cannot be read: closed for the day
    if limits := catalogue.daily_limits():
        day = budget_day(now, catalogue.contact_policy.timezone)
        try:
            shown = await spent_today(api.store, day, limits, unreadable)
        except StoreUnavailable:  # the catalogue is still worth answering
            shown = None
    return json_response(catalogue_listing(catalogue, channel, now, shown, unreadable))


# --- alerts, console, service pages ------------------------------------------------------


CONSOLE = ConsolePage.load()


async def console(request: web.Request) -> web.Response:
    return web.Response(text=CONSOLE.html, content_type="text/html", headers=CONSOLE.headers)


async def openapi(request: web.Request) -> web.Response:
    document = openapi_document(api_of(request).settings)
    return web.Response(body=document, content_type="application/json")


async def metrics(request: web.Request) -> web.Response:
    body = api_of(request).metrics.shared_exposition()
    return web.Response(body=body, content_type="text/plain", charset="utf-8")


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    api = api_of(request)
    checks = {"kafka": api.kafka.check()}  # from what was last seen: no request to Kafka
    try:  # bounded: a frozen Redis must not hold the answer past a probe's timeout
        checks["redis"] = "ok" if await api.store.ping() else "down"
    except Exception:  # unavailable, or a client in a state of its own (a node lost)
        checks["redis"] = "down"
    # Ready once started: while Redis or Kafka is down the API still answers (default
    # offers, 503s that say retry), better than no answer at all from a pod taken out of
    # the load balancer; the checks say what is degraded.
    # Not before the model snapshots were first tried, though: until then it holds the
    # empty models it started with.
    status = "ready" if all(v == "ok" for v in checks.values()) else "degraded"
    # What a start still waits for is named, so that a pod held unready says why.
    checks["alerts"] = "ok" if api.alerts.ready.is_set() else "starting: reading the alert topics"
    checks["models"] = "ok" if api.reloads.tried.is_set() else "starting: loading the snapshots"
    ready = checks["alerts"] == checks["models"] == "ok"
    return json_response({"status": status if ready else "not_ready", "checks": checks},
                         200 if ready else 503)  # fmt: skip


async def _not_stored(request: web.Request, response: web.StreamResponse) -> None:
    """Answers about a customer (their offers, profile, export, erasure receipt) are
    personal data: no browser or proxy cache keeps them."""
    if request.path.startswith("/v1/customers/"):
        response.headers.setdefault("Cache-Control", "no-store")


def add_routes(app: web.Application) -> None:
    app.on_response_prepare.append(_not_stored)
    # No HEAD beside GET: a HEAD of recommendations would take and publish a decision,
    # and one of the alert stream would write a body after the headers.
    get = functools.partial(app.router.add_get, allow_head=False, expect_handler=expect_continue)
    get(f"{CUSTOMER}/recommendations", recommendations)
    get(CUSTOMER, get_customer)
    get(f"{CUSTOMER}/export", export_customer)
    get("/v1/offers", offers)
    app.router.add_delete(CUSTOMER, delete_customer, expect_handler=expect_continue)
    app.router.add_post("/v1/events", post_events, expect_handler=continue_for("ingest"))
    app.router.add_post("/v1/outcomes", post_outcomes, expect_handler=continue_for("outcomes"))
    get("/v1/alerts/stream", alerts_stream)
    get("/console", console)
    get("/openapi.json", openapi)
    get("/metrics", metrics)
    # probes and uptime checks often ask with HEAD: these answer it as GET, without a body
    app.router.add_get("/healthz", healthz, expect_handler=expect_continue)
    app.router.add_get("/readyz", readyz, expect_handler=expect_continue)
