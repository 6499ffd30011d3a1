"""``POST /v1/events`` and ``POST /v1/outcomes``: a customer's touchpoints and the
outcomes of offers made to them, checked as the workers would check them, then written
to Kafka as sent, but for those of erased customers (see :mod:`streams.api.erased_items`).
A touchpoint refused as invalid or erased is counted in ``moments_events_total`` as the
workers count those they read (it never reaches them)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import msgspec
from aiohttp import web

from feature_store.facts import ts_ms
from feature_store.withdrawals import withdraws
from schemas import InvalidEvent, Outcome, TouchpointEvent, decode_outcome, decode_touchpoint
from schemas.ahead import not_ahead
from schemas.errors import decode_wire
from streams import topics
from streams.api import erased_items
from streams.api.auth import ApiKey
from streams.api.body_cost import body_cost
from streams.api.body_encoding import check_transfer_coding, inflated
from streams.api.errors import ApiError, json_response, kafka_unavailable
from streams.api.kafka_health import DOWN
from streams.api.media_type import check_json_body
from streams.api.publisher import MAX_RECORD_BYTES, RecordTooLarge, too_large
from streams.api.request_checks import (
    announced_size,
    api_of,
    authorise,
    check_announced_size,
    rate_limited,
    sent_once,
    too_many_uploads,
    visitor_of,
)
from streams.api.server import Api
from streams.api.withdrawals_ahead import withdraw_now

_one = msgspec.json.Decoder(msgspec.Raw)
_many = msgspec.json.Decoder(list[msgspec.Raw])


async def _items(request: web.Request, max_items: int, key: ApiKey) -> list[msgspec.Raw]:
    """The body's items, its cost charged to ``key``'s rate, or its visitor's for a key
    bound to origins (see :func:`body_cost`)."""
    encoding = sent_once(request, "Content-Encoding") or ""
    check_transfer_coding(request.headers.getall("Transfer-Encoding", []))
    check_json_body(request)  # a 415 for another type, or another charset than UTF-8
    check_announced_size(request)
    raw = await _received(request, key.name, visitor_of(request, key))
    limit = api_of(request).settings.api_max_body_bytes  # inflated, as sent
    raw = inflated(raw, encoding, limit)
    try:
        raw.decode("utf-8")  # as JSON between systems must be (the items go on as sent)
    except UnicodeDecodeError as exc:
        raise ApiError(400, "malformed_json", f"the body is not UTF-8: {exc.reason} at "
                       f"byte {exc.start}") from exc  # fmt: skip
    limiter, name, visitor = api_of(request).limiter, key.name, visitor_of(request, key)
    # Requests sent together are each admitted by the token they take on arrival, before
    # any of their bodies' costs are known: a costly body whose key went into debt
    # meanwhile (another body's cost charged) is refused before it is split, or a wave of
    # them would each be split for the cost of one.
    if body_cost(len(raw), raw.count(b",") + 1) and limiter.in_debt(name, visitor):
        # told to wait as a request arriving now would be: until a token is there again
        raise rate_limited(limiter.wait(name, visitor), f"too many requests for key {name!r}")
    try:
        # Split, not decoded: each item is decoded alone, as a Kafka record is, so what
        # the schema ignores (an unknown field's huge number) is ignored here too, and a
        # key given twice is judged as the workers judge it.
        many = raw.lstrip()[:1] == b"["
        items = decode_wire(_many, raw) if many else [decode_wire(_one, raw)]
    except msgspec.DecodeError as exc:
        # split up to its fault, maybe all of it: charged as the most items it may hold
        limiter.charge(name, body_cost(len(raw), raw.count(b",") + 1), visitor)
        raise ApiError(400, "malformed_json", f"the body is not JSON: {exc}") from exc
    limiter.charge(name, body_cost(len(raw), len(items)), visitor)
    if not items:
        raise ApiError(400, "empty", "send one item or a non-empty list")
    if len(items) > max_items:
        raise ApiError(413, "too_many_items", f"at most {max_items} items per request")
    return items


async def _received(request: web.Request, key: str, visitor: str | None = None) -> bytes:
    """The body as sent with ``key``, within the process's budget of bodies being
    received at once (:mod:`streams.api.body_budget`: a 503 past it) and the body
    timeout."""
    api = api_of(request)
    size = announced_size(request)
    if not api.uploads.take(key, size, visitor):
        raise too_many_uploads()
    try:
        async with asyncio.timeout(api.settings.api_body_timeout_s):
            return await request.read()
    except TimeoutError as exc:  # a client trickling its body holds a connection
        raise ApiError(408, "body_timeout", "the body did not arrive within "
                       f"{api.settings.api_body_timeout_s:g} s") from exc  # fmt: skip
    except web.RequestPayloadError as exc:  # a corrupt compressed body, a malformed chunk
        raise ApiError(400, "malformed_body", "the body could not be read: its "
                       "Content-Encoding or chunked encoding is corrupt") from exc  # fmt: skip
    except ConnectionResetError as exc:  # the client stopped sending (an upload aborted)
        raise ApiError(400, "incomplete_body", "the connection ended before the whole "
                       "body (its Content-Length) arrived") from exc  # fmt: skip
    finally:
        api.uploads.give_back(key, size, visitor)


def _too_large(index: int, size: int) -> ApiError:
    return ApiError(413, "record_too_large", f"item {index} makes a Kafka record of {size} "
                    "bytes (the item as sent, and its customer id as the key); a record "
                    f"holds at most {MAX_RECORD_BYTES}; none were accepted",
                    [{"index": index, "bytes": size}])  # fmt: skip


Records = list[tuple[bytes, bytes]]  # (key, value) per item, in the order sent


def _records(decoded: list[tuple[Item, bytes]]) -> Records:
    """Each item's Kafka record: its customer id as the key, the item as sent."""
    return [(item.customer_id.encode(), raw) for item, raw in decoded]


async def _produce(
    api: Api, topic: str, records: list[tuple[bytes, bytes]], places: list[int]
) -> None:
    """Write ``records``, the items at ``places`` of those sent (their index in an error)."""

    async def write() -> None:  # shielded: once handed over, the records go on (and
        written = api.publisher.publish(topic, records, linger=False)  # /readyz hears how)
        await asyncio.wait_for(asyncio.shield(written), api.settings.api_kafka_timeout_s)

    try:
        await api.ingest_writes.timed(write)
    except RecordTooLarge as exc:  # the item as sent
        raise _too_large(places[exc.index], exc.size) from exc
    except TimeoutError as exc:  # Kafka slow or away: what it may still write is safe to send again
        raise kafka_unavailable("Kafka did not acknowledge the write in time; retry") from exc
    except Exception as exc:
        raise kafka_unavailable("could not write to Kafka; retry") from exc


T = TypeVar("T")
Item = TypeVar("Item", TouchpointEvent, Outcome)
EVENTS, OUTCOMES = "/v1/events", "/v1/outcomes"  # the routes, as metrics label them


async def _screen(
    api: Api,
    route: str,
    decoded: list[tuple[Item, bytes]],
    records: Records,
    honoured: Callable[[Item], bool] = lambda item: False,
) -> erased_items.Screened[tuple[Item, bytes]]:
    """The items less those of erased customers but for those ``honoured`` (a
    withdrawal), counted (one round trip to Redis, none while it is known to be away).
    Every item's record is checked for size first, and a request left with nothing to
    write fails as its write would: the answer must not tell who was erased."""
    oversized = too_large(records)
    if oversized is not None:
        raise _too_large(oversized.index, oversized.size)
    now = time.monotonic()
    asking = not api.outages.away("redis") and api.erasure_checks.wanted(now)
    erased = api.store.erased if asking else None
    screened = await erased_items.screen(
        decoded, lambda item: item[0].customer_id, erased, api.alerts.erased_lately,
        kept_anyway=lambda item: honoured(item[0]),
    )  # fmt: skip
    if erased is not None and not screened.checked:  # slow or away: not asked for a while
        api.erasure_checks.failed(now)
    elif screened.checked:
        api.erasure_checks.succeeded()
    if screened.erased:
        api.metrics.ingest_erased.labels(route).inc(len(screened.erased))
        if not screened.kept:  # nothing to write: a 503 where a write of them would be
            left_out = sum(len(key) + len(value) for key, value in records)
            if api.kafka.check() == DOWN or api.publisher.would_refuse(left_out):
                raise kafka_unavailable("Kafka cannot take more now; retry")
    if screened.unchecked:
        api.metrics.ingest_unchecked.labels(route).inc(screened.unchecked)
        if erased is not None:  # a request met trouble: have the outage told soon
            api.outages.look_now()
    return screened


def _decode_all(
    items: list[msgspec.Raw],
    decode: Callable[[bytes], T],
    what: str,
    refused: Callable[[InvalidEvent], None] = lambda exc: None,
) -> list[tuple[T, bytes]]:
    """Every item decoded with the same schema as Kafka input, with its JSON as sent (the
    fields the contract does not know kept, for other consumers), or a 422 naming each
    bad one (each told to ``refused``)."""
    decoded, errors = [], []
    for i, item in enumerate(items):
        raw = bytes(item)
        try:
            decoded.append((decode(raw), raw))
        except InvalidEvent as exc:
            errors.append({"index": i, "reason": exc.reason})
            refused(exc)
    if errors:
        raise ApiError(422, f"invalid_{what}", f"{len(errors)} of {len(items)} {what} are "
                       "invalid; none were accepted", errors)  # fmt: skip
    return decoded


def _not_ahead(decode: Callable[[bytes], Item], skew_s: float) -> Callable[[bytes], Item]:
    """``decode``, refusing (:class:`InvalidEvent`) an item dated more than ``skew_s``
    ahead of now."""
    skew = timedelta(seconds=skew_s)
    latest = datetime.now(UTC) + skew

    def dated(raw: bytes) -> Item:
        item = decode(raw)
        not_ahead(item, latest, skew)
        return item

    return dated


async def post_events(request: web.Request) -> web.Response:
    key = authorise(request, "ingest")
    api = api_of(request)
    received_ms = ts_ms(datetime.now(UTC))  # before the write: the records' time is no earlier

    def invalid(exc: InvalidEvent) -> None:  # under the type it names, if one of the seven
        api.metrics.events.labels(exc.kind, "invalid").inc()

    items = await _items(request, api.settings.api_max_items, key)
    # as workers take them, from when the body came (a slow upload's items are no later)
    dated = _not_ahead(decode_touchpoint, api.settings.max_future_skew_s)
    decoded = _decode_all(items, dated, "events", invalid)
    # a withdrawal is written all the same: one sent just before an erasure, or after
    # it, is kept beside the tombstone (feature_store/lua/apply.lua)
    records = _records(decoded)
    events = await _screen(api, EVENTS, decoded, records, withdraws)
    for event, _ in events.erased:
        api.metrics.events.labels(event.kind, "erased").inc()
    topic = api.settings.topic(topics.TOUCHPOINTS)
    if events.kept:
        await _produce(api, topic, [records[i] for i in events.places], events.places)
        # honoured by this API's answers from now, however far behind the workers are
        await withdraw_now(api, [e for e, _ in events.kept], received_ms)
    else:  # every item was an erased customer's: answered no sooner than a write
        await api.ingest_writes.wait()
    # the same answer whoever was erased: a sender learns nothing of erasures from it
    event_ids = [e.event_id for e, _ in decoded]
    return json_response({"accepted": len(decoded), "event_ids": event_ids}, 202)


async def post_outcomes(request: web.Request) -> web.Response:
    key = authorise(request, "outcomes")  # which "ingest" grants too
    api = api_of(request)
    items = await _items(request, api.settings.api_max_items, key)
    # as the learner takes them, from when the body came
    dated = _not_ahead(decode_outcome, api.settings.max_future_skew_s)
    decoded = _decode_all(items, dated, "outcomes")
    records = _records(decoded)
    outcomes = await _screen(api, OUTCOMES, decoded, records)
    topic = api.settings.topic(topics.OFFER_OUTCOMES)
    if outcomes.kept:
        await _produce(api, topic, [records[i] for i in outcomes.places], outcomes.places)
    else:  # every item was an erased customer's: answered no sooner than a write
        await api.ingest_writes.wait()
    for outcome, _ in outcomes.kept:
        api.metrics.outcomes_accepted.labels(outcome.outcome).inc()
    # the same answer whoever was erased (a web page's key may post outcomes: anyone's)
    decision_ids = [o.decision_id for o, _ in decoded]
    return json_response({"accepted": len(decoded), "decision_ids": decision_ids}, 202)
