"""``GET /v1/alerts/stream``: the contact-centre screens' Server-Sent Events, fanned out
from the process's :class:`~streams.api.alerts.AlertHub`: resumable by position
(``Last-Event-ID``), told of erasures and of alerts they missed, and cut off when they
stop taking what is written."""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket

import msgspec
from aiohttp import web

from schemas.touchpoints import queue_named
from streams.api.alert_gaps import Behind
from streams.api.alerts import AlertHub
from streams.api.errors import ApiError
from streams.api.request_checks import api_of, authorise, query_once, sent_once
from streams.api.resume_notices import erased_sse
from streams.api.screen_erasures import Erased, Screen
from streams.api.screen_feed import Alert, StreamPosition, for_queue

_json = msgspec.json.Encoder()


HUB_RETRY_S = 2  # when a screen may try again while the alert fan-out is starting
WRITE_TIMEOUT_S = 30.0  # a screen that takes nothing written for this long is cut off
CHUNK_BYTES = 16_384  # the erasures a resumed screen is told first go in writes this big
BACKLOG_CHECK_S = 1.0  # the backlog's tombstone check, at most (Redis may be away)


async def alerts_stream(request: web.Request) -> web.StreamResponse:
    key = authorise(request, "profile-read", key_in_query=True)
    api = api_of(request)
    hub = api.alerts
    queue = queue_named(query_once(request, "queue"))  # a blank one: every queue
    in_query = query_once(request, "last_event_id")  # each parameter once, as headers
    last_id = sent_once(request, "Last-Event-ID") or in_query
    # every screen is told of erasures by ref (an id only if sent it on this connection);
    # `erasures=ref`, which once asked for that, is still accepted
    if query_once(request, "erasures") not in (None, "ref"):
        raise ApiError(400, "invalid_erasures", "erasures must be ref (or left out)")
    # alerts are unnamed events (EventSource's onmessage hears them), unless the screen
    # or the deployment (MOMENTS_API_ALERT_EVENT) asks for the name `intervention` they
    # had before 2026-12-05
    named = query_once(request, "alert_event", api.settings.api_alert_event)
    if named not in ("", "intervention"):
        raise ApiError(400, "invalid_alert_event",
                       "alert_event must be intervention (or left out: unnamed)")  # fmt: skip
    # before the stream starts, after which no error can be answered: an id that is not
    # one of ours names no position, and the stream sends every buffered alert
    position = await hub.position(last_id)
    if not hub.ready.is_set():  # the recent alerts and erasures are not read yet: a screen
        # resuming now would miss the erasures made while it was away, unannounced
        raise ApiError(503, "alerts_not_ready", "the alert stream is starting; retry shortly",
                       [{"retry_after_s": HUB_RETRY_S}],
                       headers={"Retry-After": str(HUB_RETRY_S)})  # fmt: skip
    # a stream with nothing written for this long writes a position (MOMENTS_API_ALERT_KEEPALIVE_S)
    keep_alive_s = api.settings.api_alert_keepalive_s
    if not api.streams.take(key.name):
        # when to try again: a gone screen's seat is given back at its stream's next
        # write, a keep-alive at most keep_alive_s away
        retry_s = math.ceil(keep_alive_s)
        raise ApiError(429, "too_many_streams",
                       f"key {key.name!r} has {api.streams.per_key} alert streams open "
                       "already; close a screen first", [{"retry_after_s": retry_s}],
                       headers={"Retry-After": str(retry_s)})  # fmt: skip
    try:
        return await _stream(request, hub, position, last_id, queue, bool(named), keep_alive_s)
    finally:
        api.streams.give_back(key.name)


async def _stream(
    request: web.Request,
    hub: AlertHub,
    position: StreamPosition,
    last_id: str | None,
    queue: str | None,
    named: bool,
    keep_alive_s: float,
) -> web.StreamResponse:
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
    })  # fmt: skip
    try:
        await response.prepare(request)
    except ConnectionError:  # the screen left while its stream was set up (the broker
        return response  # asked where a resumed screen is): nothing to answer, no fault
    drop_when_unacknowledged(request)
    inbox = hub.subscribe(queue)
    quiet = hub.unbuffered()  # with the subscription: what arrives after is in the inbox
    screen = Screen(resumed=last_id is not None)
    erasures: list[bytes] = []  # told first, as they are written (up to 10,000)
    behind: list[Behind] = []
    if last_id is not None:  # it may show alerts of customers erased while it was away
        # by ref, the same for every screen resumed (sent nothing yet): built once
        erasures = list(hub.resume_notices.chunks(CHUNK_BYTES))
        behind = hub.behind(StreamPosition.parse(last_id), queue)
    head = _gap_sse([b for b in behind if b.missed])
    # where it missed alerts, told once; where only other queues' left, nothing to tell:
    # passed from here on either way
    for partition, _, kept_from, _ in behind:
        position.skip_to(partition, kept_from - 1)
    # taken with the gap, before anything is written: alerts that leave the buffer while
    # the head is written (to a slow screen) are still sent, not lost untold
    backlog = hub.since(position, None)
    # partitions with nothing to send from: passed all the same, so that its event ids
    # name them, and alerts it misses there while away are told as a gap
    position.cover(quiet)
    sent_id = position.event_id()  # the last position the screen was sent (or resumed from)
    if behind:  # where it resumes from should it go before an alert is sent
        head += _position_sse(sent_id)

    async def hand_on(alert: Alert) -> bool:
        """Pass ``alert``, writing it if it is for this screen; whether it was written."""
        nonlocal sent_id
        position.advance(alert)  # left out by the queue filter, or sent
        customer_id = alert.intervention.customer_id
        if not for_queue(alert, queue) or customer_id in hub.erased_lately:
            return False
        screen.sent(customer_id)
        sent_id = position.event_id()
        await _write(request, response, _sse(sent_id, alert.raw, named))
        return True

    try:
        await _write(request, response, b"retry: 2000\n\n")
        for chunk in erasures:  # each write given WRITE_TIMEOUT_S: read slowly but
            await _write(request, response, chunk)  # steadily, they cut no screen off
        if head:
            await _write(request, response, head)
        erasures, head = [], b""  # (a stream lasts a shift: it keeps none of its start)
        # checked against the tombstones too: an erasure made on another process whose
        # record has not reached this one (Kafka failed it, and the caller retries); while
        # Redis cannot say, the backlog goes as checked when it came (the stream waiting
        # on Redis would write nothing, not even keep-alives, and keep its seat)
        try:
            async with asyncio.timeout(BACKLOG_CHECK_S):
                backlog = await hub.recheck(backlog)
        except TimeoutError:
            pass
        # what arrives while the backlog is sent, or twice, is passed already: once each
        for alert in backlog:
            if not position.passed(alert):
                await hand_on(alert)
        backlog = []  # (alerts the buffer let go of since are not kept here)
        if position.event_id() != sent_id:  # it passed other queues' alerts after its last:
            sent_id = position.event_id()  # where it is, should it go before the next one
            await _write(request, response, _position_sse(sent_id))
        loop = asyncio.get_running_loop()
        # A screen gone is seen at the next write, or when a notice wakes the stream up:
        # a keep-alive goes keep_alive_s after the last write, however many notices came
        # meanwhile that this screen was not sent (other queues' alerts), so that a stream
        # whose screen left ends within that time, and gives its seat back.
        quiet_until = loop.time() + keep_alive_s
        while not (inbox.closed and inbox.empty()):
            if request.transport is None or request.transport.is_closing():
                break  # the screen has gone
            try:
                # a notice waiting is taken at once (wait_for made a task, and took turns
                # of the loop, per notice: a burst of alerts outran every stream and ended it)
                if loop.time() >= quiet_until:
                    raise TimeoutError  # others' notices all the while: a keep-alive is due
                if inbox.empty():
                    async with asyncio.timeout_at(quiet_until):
                        notice = await inbox.get()
                else:
                    notice = inbox.get_nowait()
            except TimeoutError:
                # the keep-alive: a position event, where the stream is (it may have passed
                # others' alerts meanwhile), not a comment, which EventSource never hands
                # a page: a screen that hears nothing for a while has a stalled stream
                sent_id = position.event_id()
                await _write(request, response, _position_sse(sent_id))
                quiet_until = loop.time() + keep_alive_s
                continue
            if notice is None:  # the process is stopping
                break
            if isinstance(notice, Erased):
                told = screen.erasure(notice)
                if told is not None:
                    await _write(request, response, erased_sse(told))
                    quiet_until = loop.time() + keep_alive_s
            elif not position.passed(notice) and await hand_on(notice):
                quiet_until = loop.time() + keep_alive_s
        transport = request.transport  # None once the screen has gone
        if position.event_id() != sent_id and transport is not None and not transport.is_closing():
            # ended (the process stops, or the screen fell behind) after passing others'
            # alerts: where it is, so that it resumes there, not told of them as a gap
            await _write(request, response, _position_sse(position.event_id()))
    # the screen went: a write failed (ConnectionResetError), or aiohttp lost the
    # connection while a write waited for room (a plain ConnectionError)
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        hub.unsubscribe(inbox)
    return response


def drop_when_unacknowledged(request: web.Request) -> None:
    """Have the kernel drop a stream's connection once what was written to it has gone
    unacknowledged for ``WRITE_TIMEOUT_S`` (``TCP_USER_TIMEOUT``): the screen's machine
    left the network, or was shut. Its keep-alives go every ``api_alert_keepalive_s``, so the
    next write after that fails and the seat is free (a write alone would never wait:
    the kernel takes a keep-alive whether the peer is there or not)."""
    sock = request.transport.get_extra_info("socket") if request.transport else None
    if sock is None or not hasattr(socket, "TCP_USER_TIMEOUT"):
        return
    with contextlib.suppress(OSError):  # not TCP (a unix socket): no peer to lose
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(WRITE_TIMEOUT_S * 1000))


async def _write(request: web.Request, response: web.StreamResponse, data: bytes) -> None:
    """Write ``data``; a screen that takes none of it within ``WRITE_TIMEOUT_S`` has
    its connection dropped (ConnectionResetError), so that its stream ends."""
    try:
        async with asyncio.timeout(WRITE_TIMEOUT_S):
            await response.write(data)
    except TimeoutError:
        if request.transport is not None:
            request.transport.abort()  # what it has not read goes too
        raise ConnectionResetError("the screen stopped reading") from None


def _sse(event_id: str, data: bytes, named: bool = False) -> bytes:
    r"""An alert: one ``data:`` line per line of ``data`` (JSON from other producers may
    hold line breaks between its tokens; a client joins the lines with newlines again),
    as an unnamed event (``message``), or ``named`` ``intervention``.

    >>> _sse("0-7", b'{"a":\n1}')
    b'id: 0-7\ndata: {"a":\ndata: 1}\n\n'
    >>> _sse("0-7", b"{}", named=True)
    b'id: 0-7\nevent: intervention\ndata: {}\n\n'
    """
    lines = b"".join(b"data: " + line + b"\n" for line in data.splitlines() or [b""])
    name = b"event: intervention\n" if named else b""
    return b"id: " + event_id.encode() + b"\n" + name + lines + b"\n"


def _position_sse(event_id: str) -> bytes:
    r"""Where the stream is, after alerts the screen was not sent (other queues'): so that
    it resumes from there, and is not told of a gap in alerts that were never its own;
    also the keep-alive, which a screen hears. No id where the stream has passed nothing
    yet: an empty id would reset the screen's last one.

    >>> _position_sse("0-7.1-2")
    b'id: 0-7.1-2\nevent: position\ndata: {}\n\n'
    >>> _position_sse("")
    b'event: position\ndata: {}\n\n'
    """
    where = b"id: " + event_id.encode() + b"\n" if event_id else b""
    return where + b"event: position\ndata: {}\n\n"


def _gap_sse(missed: list[Behind]) -> bytes:
    """Alerts the stream cannot send (after offset ``after``, before ``before``, in each
    partition named) have left the buffer; nothing when there are none. No id."""
    if not missed:
        return b""
    body = [{"partition": p, "after": after, "before": before} for p, after, before, _ in missed]
    return b"event: gap\ndata: " + _json.encode({"missed": body}) + b"\n\n"
