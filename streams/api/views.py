"""HTTP views: decode and check the request, call the logic, write, answer."""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import re
import urllib.parse
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from agents.fallback_offers import fallback_decision
from agents.risk_features import risk_features
from agents.touchpoint_handler import not_ahead
from feature_store import CustomerFeatures, StoreUnavailable
from schemas import (
    CustomerErasure,
    InvalidEvent,
    NextBestOffer,
    TouchpointEvent,
    decode_outcome,
    decode_touchpoint,
    encode_erasure,
)
from schemas.catalogue import OFFER_CHANNELS
from schemas.customer_ids import id_fault
from streams import topics
from streams.api.auth import ApiKey, AuthError
from streams.api.body_encoding import inflated
from streams.api.catalogue_listing import catalogue_listing
from streams.api.console_page import ConsolePage
from streams.api.customer_export import KEPT_IN_TOPICS, export_body
from streams.api.customer_profile import customer_profile
from streams.api.errors import ApiError, json_response, refused
from streams.api.openapi import openapi_spec
from streams.api.protocol_errors import expect_continue
from streams.api.publisher import MAX_RECORD_BYTES, RecordTooLarge
from streams.api.server import API_KEY, Api

# Any customer id POST /v1/events takes, braces included ("{3F2504E0-...}"); aiohttp's
# default pattern would leave such a customer unreachable (404)
CUSTOMER = "/v1/customers/{customer_id:[^/]+}"
_CHANNEL_FAULT = f"channel must be one of {', '.join(OFFER_CHANNELS)}"
_one = msgspec.json.Decoder(msgspec.Raw)
_many = msgspec.json.Decoder(list[msgspec.Raw])
log = logging.getLogger(__name__)


def api_of(request: web.Request) -> Api:
    return request.app[API_KEY]


def authorise(request: web.Request, scope: str, key_in_query: bool = False) -> ApiKey:
    """Check the request's API key for ``scope`` and its rate. The key comes in the
    ``Authorization: Bearer`` or ``X-API-Key`` header; in the ``api_key`` query
    parameter only where ``key_in_query`` (the alert stream, for browsers' EventSource,
    which cannot send headers): keys in URLs end up in proxies' logs."""
    api = api_of(request)
    key = _checked_key(request, scope, key_in_query)
    wait = api.limiter.allow(key.name)
    if wait:  # whole seconds, rounded up, in the body as in the header (a body saying
        # 0.0 had clients retry at once)
        after = max(1, math.ceil(wait))
        raise ApiError(429, "rate_limited", f"too many requests for key {key.name!r}",
                       [{"retry_after_s": after}], headers={"Retry-After": str(after)})  # fmt: skip
    return key


def _checked_key(request: web.Request, scope: str, key_in_query: bool = False) -> ApiKey:
    """The request's key if it may act in ``scope`` (see :func:`authorise`); raises
    :class:`AuthError` otherwise."""
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else None
    token = token or request.headers.get("X-API-Key")
    if not token and key_in_query:
        token = request.query.get("api_key")
    headers = request.headers
    return api_of(request).keys.authorise(
        token, scope, headers.get("Origin"), headers.get("Referer")
    )


def continue_for(scope: str) -> Callable[[web.Request], Awaitable[web.StreamResponse | None]]:
    """The expect handler of a route that takes a body in ``scope``: ``Expect:
    100-continue`` invites the body only from a key that may send it; any other is
    answered (401, 403) before the body comes."""

    async def expecting(request: web.Request) -> web.StreamResponse | None:
        if request.headers.get("Expect", "").lower() == "100-continue":
            try:
                _checked_key(request, scope)
            except AuthError as exc:
                return refused(exc)
        return await expect_continue(request)

    return expecting


_PERCENT_ENCODED = re.compile(r"(?:[^%]|%[0-9A-Fa-f]{2})*")


def customer_id_of(request: web.Request, to_act_on: bool = False) -> str:
    """The path's customer id. ``to_act_on``: one to decide for (which makes a profile),
    so also as touchpoints must name one (:mod:`schemas.customer_ids`); reading and
    erasing take any id within the length, so that a profile made before that rule
    can still be read and erased."""
    customer_id = request.match_info["customer_id"]
    if not 0 < len(customer_id) <= 256:
        raise ApiError(400, "invalid_customer_id", "customer id must be 1 to 256 characters")
    if "%" in customer_id or not customer_id.isascii():  # as sent: is it encoded well?
        # the request target as it came (yarl re-encodes what it finds ill-encoded), in
        # origin or absolute form: /v1/customers/{id}[/...][?...], http://host/v1/...
        sent = urllib.parse.urlsplit(request.raw_path).path.split("/")[3]
        try:
            if not _PERCENT_ENCODED.fullmatch(sent):
                raise ValueError(sent)
            urllib.parse.unquote_to_bytes(sent).decode("utf-8")
        except ValueError as exc:  # left as sent, "a%FF" would be the same id as "a%25FF"
            raise ApiError(400, "invalid_customer_id", "the customer id is not well "
                           "percent-encoded UTF-8") from exc  # fmt: skip
    fault = id_fault(customer_id) if to_act_on else None
    if fault is not None:
        raise ApiError(400, "invalid_customer_id", f"the customer id {fault}")
    return customer_id


# --- recommendations ---------------------------------------------------------------------


def _fallback(api: Api, customer_id: str, channel: str, limit: int, reason: str) -> NextBestOffer:
    control_group = api.policy.contact_policy.control_group
    return fallback_decision(customer_id, channel, limit, reason, api.catalogue.current,
                             control_group, datetime.now(UTC))  # fmt: skip


# What a decision says of its customer beyond the offers: their segment, the model's input
# (value, experience, tastes) and the reasons (consent withdrawn, quiet hours, fatigue).
# Answered only to keys that may read profiles: a key web pages use, visible to their
# visitors, would tell anyone who names a customer. ``control`` (a field of every decision
# in the contract) is answered to all: the hold-out is drawn by a hash of the id, and a
# page must tell "held out" from "nothing to offer".
EXPLANATION = ("segment", "context", "reasons")


async def recommendations(request: web.Request) -> web.Response:
    key = authorise(request, "recommend")
    api = api_of(request)
    customer_id = customer_id_of(request, to_act_on=True)
    channel = request.query.get("channel", "web")
    if channel not in OFFER_CHANNELS:
        raise ApiError(400, "invalid_channel", _CHANNEL_FAULT)
    raw_limit = request.query.get("limit", "3")  # digits only (int() takes "1_0", " 5")
    limit = int(raw_limit) if re.fullmatch(r"[0-9]{1,2}", raw_limit) else 0
    if not 1 <= limit <= 10:
        raise ApiError(400, "invalid_limit", "limit must be a whole number from 1 to 10")
    erased = False
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        decided = await api.recommender.recommend(customer_id, channel, limit)
        if decided is None:  # erased: answered as anyone unknown, nothing kept or sent
            erased = True
            left = api.recommender.budget_s - (loop.time() - started)
            decided = await api.recommender.as_if_unknown(customer_id, channel, limit, left)
        decision = decided
    except TimeoutError:
        decision = _fallback(api, customer_id, channel, limit, "latency_budget")
    except StoreUnavailable:
        api.outages.look_now()
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
            api.metrics.fallbacks.labels(decision.reasons[0].split(":", 1)[1]).inc()
            api.recommender.publish_soon(decision)
        api.metrics.decisions.labels("next_best_offer", channel).inc()
        api.metrics.offers_in(decision)
    body = msgspec.to_builtins(decision)
    if "profile-read" not in key.scopes:
        for field in EXPLANATION:
            body.pop(field, None)
    # its titles from the catalogue it was decided with (one may have been loaded since)
    catalogue = api.catalogue.of_version(decision.catalogue_version)
    for offer in body["offers"]:
        found = catalogue.by_id(offer["offer_id"])
        if found is not None:
            offer["title"] = found.title
    return json_response(body)


# --- ingestion ---------------------------------------------------------------------------


async def _items(request: web.Request, max_items: int) -> list[msgspec.Raw]:
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    try:
        async with asyncio.timeout(api_of(request).settings.api_body_timeout_s):
            raw = await request.read()
    except TimeoutError as exc:  # a client trickling its body holds a connection
        raise ApiError(408, "body_timeout", "the body did not arrive within "
                       f"{api_of(request).settings.api_body_timeout_s:g} s") from exc  # fmt: skip
    except web.RequestPayloadError as exc:  # a corrupt compressed body, a malformed chunk
        raise ApiError(400, "malformed_body", "the body could not be read: its "
                       "Content-Encoding or chunked encoding is corrupt") from exc  # fmt: skip
    except ConnectionResetError as exc:  # the client stopped sending (an upload aborted)
        raise ApiError(400, "incomplete_body", "the connection ended before the whole "
                       "body (its Content-Length) arrived") from exc  # fmt: skip
    limit = api_of(request).settings.api_max_body_bytes  # inflated, as sent
    raw = inflated(raw, request.headers.get("Content-Encoding", ""), limit)
    try:
        raw.decode("utf-8")  # as JSON between systems must be (the items go on as sent)
    except UnicodeDecodeError as exc:
        raise ApiError(400, "malformed_json", f"the body is not UTF-8: {exc.reason} at "
                       f"byte {exc.start}") from exc  # fmt: skip
    try:
        # Split, not decoded: each item is decoded alone, as a Kafka record is, so what
        # the schema ignores (an unknown field's huge number) is ignored here too, and a
        # key given twice is judged as the workers judge it.
        items = _many.decode(raw) if raw.lstrip()[:1] == b"[" else [_one.decode(raw)]
    except msgspec.DecodeError as exc:
        raise ApiError(400, "malformed_json", f"the body is not JSON: {exc}") from exc
    except RecursionError as exc:
        raise ApiError(400, "malformed_json", "the body is nested too deeply") from exc
    if not items:
        raise ApiError(400, "empty", "send one item or a non-empty list")
    if len(items) > max_items:
        raise ApiError(413, "too_many_items", f"at most {max_items} items per request")
    return items


async def _produce(api: Api, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    try:
        await api.publisher.publish(topic, records, linger=False)
    except RecordTooLarge as exc:  # the item as sent, whose index is the record's
        raise ApiError(413, "record_too_large", f"item {exc.index} is {exc.size} bytes; a "
                       f"Kafka record holds at most {MAX_RECORD_BYTES}; none were accepted",
                       [{"index": exc.index, "bytes": exc.size}]) from exc  # fmt: skip
    except Exception as exc:
        raise ApiError(503, "kafka_unavailable", "could not write to Kafka; retry") from exc


T = TypeVar("T")


def _decode_all(
    items: list[msgspec.Raw], decode: Callable[[bytes], T], what: str
) -> list[tuple[T, bytes]]:
    """Every item decoded with the same schema as Kafka input, with its JSON as sent (the
    fields the contract does not know kept, for other consumers), or a 422 naming each
    bad one."""
    decoded, errors = [], []
    for i, item in enumerate(items):
        raw = bytes(item)
        try:
            decoded.append((decode(raw), raw))
        except InvalidEvent as exc:
            errors.append({"index": i, "reason": exc.reason})
    if errors:
        raise ApiError(422, f"invalid_{what}", f"{len(errors)} of {len(items)} {what} are "
                       "invalid; none were accepted", errors)  # fmt: skip
    return decoded


async def post_events(request: web.Request) -> web.Response:
    authorise(request, "ingest")
    api = api_of(request)
    skew = timedelta(seconds=api.settings.max_future_skew_s)
    latest = datetime.now(UTC) + skew

    def dated(raw: bytes) -> TouchpointEvent:  # as the workers would take it: not ahead
        event = decode_touchpoint(raw)
        not_ahead(event, latest, skew)
        return event

    events = _decode_all(await _items(request, api.settings.api_max_items), dated, "events")
    topic = api.settings.topic(topics.TOUCHPOINTS)
    await _produce(api, topic, [(e.customer_id.encode(), raw) for e, raw in events])
    event_ids = [e.event_id for e, _ in events]
    return json_response({"accepted": len(events), "event_ids": event_ids}, 202)


async def post_outcomes(request: web.Request) -> web.Response:
    authorise(request, "outcomes")  # which "ingest" grants too
    api = api_of(request)
    outcomes = _decode_all(await _items(request, api.settings.api_max_items), decode_outcome,
                           "outcomes")  # fmt: skip
    topic = api.settings.topic(topics.OFFER_OUTCOMES)
    await _produce(api, topic, [(o.customer_id.encode(), raw) for o, raw in outcomes])
    for outcome, _ in outcomes:
        api.metrics.outcomes.labels(outcome.outcome).inc()
    return json_response(
        {"accepted": len(outcomes), "decision_ids": [o.decision_id for o, _ in outcomes]}, 202
    )


# --- the offer catalogue -----------------------------------------------------------------


async def offers(request: web.Request) -> web.Response:
    """The catalogue in use (for titles and scripts beside recommendations), with which
    offers may be made now and how much of each daily budget is spent."""
    authorise(request, "recommend")
    api = api_of(request)
    channel = request.query.get("channel")
    if channel is not None and channel not in OFFER_CHANNELS:
        raise ApiError(400, "invalid_channel", _CHANNEL_FAULT)
    catalogue = api.catalogue.current
    now = datetime.now(UTC)
    shown: dict[str, int] | None = {}
    if catalogue.daily_limits():
        try:
            shown = await api.store.budgets.spent(now.date())
        except StoreUnavailable:  # the catalogue is still worth answering
            shown = None
    return json_response(catalogue_listing(catalogue, channel, now, shown))


# --- profile and erasure -----------------------------------------------------------------


async def get_customer(request: web.Request) -> web.Response:
    authorise(request, "profile-read")
    api = api_of(request)
    customer_id = customer_id_of(request)
    features = await api.store.read(customer_id)
    if features is None:
        raise ApiError(404, "not_found", "Moments holds no profile for this customer")
    return json_response(await _profile(api, customer_id, features))


async def export_customer(request: web.Request) -> web.Response:
    """The customer's access request: everything kept about them (scope ``export``)."""
    authorise(request, "export")
    api = api_of(request)
    customer_id = customer_id_of(request)
    record = await api.store.export(customer_id)
    if not record.holds_anything:
        raise ApiError(404, "not_found", "Moments holds nothing about this customer")
    features = None if record.erased_at_ms is not None else await api.store.read(customer_id)
    profile = None if features is None else await _profile(api, customer_id, features)
    topic_names = {name: api.settings.topic(name) for name in KEPT_IN_TOPICS}
    return json_response(export_body(customer_id, record, profile, datetime.now(UTC), topic_names))


async def _profile(api: Api, customer_id: str, features: CustomerFeatures) -> dict[str, Any]:
    decisions = [msgspec.json.decode(c) for c in await api.store.decisions.recent(customer_id)]
    model = api.risk.model
    risk = model.predict_one(risk_features(features, datetime.now(UTC)))
    control = api.policy.contact_policy.control_group.contains(customer_id)
    currency = api.settings.money.currency
    return customer_profile(
        customer_id, features, decisions, risk, api.risk.version, model.reason, control, currency
    )


async def delete_customer(request: web.Request) -> web.Response:
    authorise(request, "erase")
    api = api_of(request)
    customer_id = customer_id_of(request)
    receipt = await api.store.erase(customer_id)
    api.alerts.forget(customer_id)  # other API processes: from the erasure record
    # the record's time starts the block when the topics are replayed (as this request
    # did); the receipt tells when the customer was first erased, and everything erasing
    # them removed, a request that was told to try again included
    now = datetime.now(UTC)
    first = receipt.erased_at_ms
    erased_at = now if first is None else datetime.fromtimestamp(first / 1000, UTC)
    record = CustomerErasure(customer_id=customer_id, subject=receipt.subject, ts=now,
                             keys_removed=receipt.keys_removed)  # fmt: skip
    topic = api.settings.topic(topics.CUSTOMER_ERASURES)
    try:
        meta = await (await api.producer.send(topic, encode_erasure(record),
                                              key=customer_id.encode()))  # fmt: skip
    except Exception as exc:
        api.kafka.sent(ok=False)
        raise ApiError(503, "kafka_unavailable", "erased from Redis, but the erasure record "
                       "could not be written to Kafka; retry the request") from exc  # fmt: skip
    api.kafka.sent(ok=True)
    return json_response({
        "subject": receipt.subject,
        "erased_at": erased_at,
        "keys_removed": receipt.keys_removed,
        "erased": receipt.kinds,
        "blocked": receipt.blocked,
        "erasure_record": {"topic": topic, "partition": meta.partition, "offset": meta.offset},
    })  # fmt: skip


# --- alerts, console, service pages ------------------------------------------------------


CONSOLE = ConsolePage.load()


async def console(request: web.Request) -> web.Response:
    return web.Response(text=CONSOLE.html, content_type="text/html", headers=CONSOLE.headers)


async def openapi(request: web.Request) -> web.Response:
    return json_response(openapi_spec(api_of(request).settings))


async def metrics(request: web.Request) -> web.Response:
    body = api_of(request).metrics.exposition()
    return web.Response(body=body, content_type="text/plain", charset="utf-8")


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    api = api_of(request)
    checks = {"kafka": api.kafka.check()}  # from what was last seen: no request to Kafka
    try:  # bounded: a frozen Redis must not hold the answer past a probe's timeout
        checks["redis"] = "ok" if await api.store.ping() else "down"
    except StoreUnavailable:
        checks["redis"] = "down"
    # Ready once started: while Redis or Kafka is down the API still answers (default
    # offers, 503s that say retry), better than no answer at all from a pod taken out of
    # the load balancer; the checks say what is degraded.
    # Not before the model snapshots were first tried, though: until then it holds the
    # empty models it started with.
    ready = api.alerts.ready.is_set() and api.reloads.tried.is_set()
    status = "ready" if all(v == "ok" for v in checks.values()) else "degraded"
    return json_response({"status": status if ready else "not_ready", "checks": checks},
                         200 if ready else 503)  # fmt: skip


def add_routes(app: web.Application) -> None:
    from streams.api import alert_stream  # which uses this module's authorisation

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
    get("/v1/alerts/stream", alert_stream.alerts_stream)
    get("/console", console)
    get("/openapi.json", openapi)
    get("/metrics", metrics)
    # probes and uptime checks often ask with HEAD: these answer it as GET, without a body
    app.router.add_get("/healthz", healthz, expect_handler=expect_continue)
    app.router.add_get("/readyz", readyz, expect_handler=expect_continue)
