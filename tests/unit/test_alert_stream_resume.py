"""The alert stream driven without Kafka: a Last-Event-ID that is not one of the stream's
positions starts the stream from the buffer, as no id would (never with an error written
into it); a resumed stream hears of the erasures made while it was away, and of alerts
that left the buffer before it could be sent them; an erased customer's alerts are not
written; a screen that stops reading is cut off."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from schemas import decode_intervention
from streams.api import alert_stream
from streams.api.alerts import AlertHub
from streams.api.screen_erasures import CustomerRefs
from streams.api.screen_feed import Alert, StreamPosition
from streams.settings import Settings
from tests.unit.api_app import KEYS, SHOP, api_app

AUTH = {"Authorization": "Bearer backend-key"}
# keep-alives every 0.2 s (MOMENTS_API_ALERT_KEEPALIVE_S; at least 1 s from the environment)
QUICK = Settings(api_keys=KEYS, api_cors_origins=SHOP, api_alert_keepalive_s=0.2)
ALERT = b'data: {"intervention_id"'  # an alert as the stream writes it (an unnamed event)

REFS = CustomerRefs(b"unit-test-secret")


async def nobody_erased(customer_ids: Sequence[str]) -> list[bool]:
    return [False] * len(customer_ids)


@contextlib.asynccontextmanager
async def served_as_moments_api(hub: AlertHub) -> AsyncIterator[int]:
    """The API's routes served as ``moments api`` serves them (a view is not cancelled
    when its client goes), on a free port, given."""
    runner = web.AppRunner(api_app(alerts=hub), handler_cancellation=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


def buffered_hub() -> AlertHub:
    """A hub (never connected to Kafka) holding one alert, at offset 7 of partition 0, and
    ready (as if it had read the recent alerts and erasures)."""
    raw = json.dumps({
        "intervention_id": "iv-1", "customer_id": "c-1", "ts": "2026-11-23T10:00:00Z",
        "kind": "retention_call", "priority": 1, "queue": "vip", "trigger_event_id": None,
        "reasons": [], "suggested_action": "Call them.",
    }).encode()  # fmt: skip
    hub = AlertHub("127.0.0.1:9", "interventions", "customer-erasures", nobody_erased, REFS)
    hub.publish([Alert("0-7", decode_intervention(raw), raw)])
    hub.ready.set()
    return hub


@pytest.mark.parametrize(
    "event_id",
    ["0-" + "9" * 5000, "9" * 5000 + "-1", "0-99999999999999999999", "0-١٢", "0-7.x-1", "-"],
)
def test_an_id_with_numbers_no_kafka_position_has_is_no_position(event_id: str) -> None:
    assert StreamPosition.parse(event_id).event_id() == ""


def test_the_largest_kafka_positions_are_still_positions() -> None:
    largest = f"{2**31 - 1}-{2**63 - 1}"
    assert StreamPosition.parse(largest).event_id() == largest


@pytest.mark.parametrize("how", ["header", "query"])
async def test_a_stream_resumed_from_a_malformed_id_sends_the_buffer(how: str) -> None:
    hub = buffered_hub()
    malformed = "0-" + "9" * 5000
    headers = {**AUTH, "Last-Event-ID": malformed} if how == "header" else AUTH
    query = {"last_event_id": malformed} if how == "query" else {}
    async with TestClient(TestServer(api_app(alerts=hub))) as client:
        reply = await client.get("/v1/alerts/stream", headers=headers, params=query)
        assert reply.status == 200
        assert reply.headers["Content-Type"] == "text/event-stream"
        start = await asyncio.wait_for(reply.content.readuntil(ALERT), 5)
        hub.close_all()  # as at shutdown: the stream ends
        rest = await asyncio.wait_for(reply.content.read(), 5)
    stream = start + rest
    assert stream.startswith(b'retry: 2000\n\nid: 0-7\ndata: {"intervention_id"')
    assert b"HTTP/1.1" not in stream and b"error" not in stream


def alert(n: int, customer: str, reasons: Sequence[str] = ()) -> Alert:
    """An alert at offset ``n`` of partition 0."""
    raw = json.dumps({
        "intervention_id": f"iv-{n}", "customer_id": customer, "ts": "2026-11-23T10:00:00Z",
        "kind": "retention_call", "priority": 1, "queue": "vip", "trigger_event_id": None,
        "reasons": list(reasons), "suggested_action": "Call them.",
    }).encode()  # fmt: skip
    return Alert(f"0-{n}", decode_intervention(raw), raw)


async def read_stream(
    hub: AlertHub, last_id: str | None, until: bytes, by_ref: bool = True
) -> bytes:
    """What a screen (one that drops cards by ref, as the console, unless ``by_ref`` is
    false) is sent up to ``until`` (and what came with it), then the stream ends."""
    headers = AUTH if last_id is None else {**AUTH, "Last-Event-ID": last_id}
    query = {"erasures": "ref"} if by_ref else {}
    async with TestClient(TestServer(api_app(alerts=hub))) as client:
        reply = await client.get("/v1/alerts/stream", headers=headers, params=query)
        start = await asyncio.wait_for(reply.content.readuntil(until), 5)
        hub.close_all()
        return start + await asyncio.wait_for(reply.content.read(), 5)


async def test_a_resumed_stream_hears_of_the_erasures_made_while_it_was_away() -> None:
    """A screen sent an alert about a customer lost its connection; the customer was
    erased before it resumed, and its card stayed for good."""
    hub = AlertHub("127.0.0.1:9", "interventions", "customer-erasures", nobody_erased, REFS)
    hub.ready.set()  # as if it had read the recent alerts and erasures
    hub.publish([alert(1, "c-gone"), alert(2, "c-kept")])
    hub.forget("c-gone")  # no screen connected
    resumed = await read_stream(hub, "0-2", b"event: erasure\n")
    told = b'event: erasure\ndata: {"customer_ref":"' + REFS("c-gone").encode() + b'"}\n\n'
    assert resumed.startswith(b"retry: 2000\n\n" + told)
    assert b"c-gone" not in resumed  # by ref: the screen learns no one's id from it
    fresh = await read_stream(hub, None, b"iv-2")  # shows nothing from before: not told
    assert b"c-gone" not in fresh
    # a screen that did not ask for refs is told by ref too: it was once told the id, on
    # the word of its Last-Event-ID, which any key could claim
    older = await read_stream(hub, "0-2", b"event: erasure\n", by_ref=False)
    assert older.startswith(b"retry: 2000\n\n" + told) and b"c-gone" not in older


async def test_a_screen_is_asked_to_retry_until_the_recent_alerts_and_erasures_are_read() -> None:
    hub = buffered_hub()
    hub.ready.clear()  # starting: a resumed screen would miss erasures made while away
    async with TestClient(TestServer(api_app(alerts=hub))) as client:
        reply = await client.get("/v1/alerts/stream", headers={**AUTH, "Last-Event-ID": "0-3"})
        assert reply.status == 503
        assert reply.headers["Retry-After"] == "2"
        assert (await reply.json())["error"] == "alerts_not_ready"


async def test_a_screen_asking_for_unknown_erasure_notices_gets_a_400() -> None:
    hub = buffered_hub()
    async with TestClient(TestServer(api_app(alerts=hub))) as client:
        reply = await client.get("/v1/alerts/stream", headers=AUTH, params={"erasures": "x"})
        assert reply.status == 400
        assert (await reply.json())["error"] == "invalid_erasures"


async def test_an_alert_with_line_breaks_reaches_the_screen_whole() -> None:
    """JSON from another producer may break lines between its tokens: each line is
    sent as a data line, which a client joins again."""
    hub = AlertHub("127.0.0.1:9", "interventions", "customer-erasures", nobody_erased, REFS)
    hub.ready.set()  # as if it had read the recent alerts and erasures
    pretty = json.dumps(json.loads(alert(1, "c-1").raw), indent=2).encode()
    hub.publish([Alert("0-1", decode_intervention(pretty), pretty.replace(b"\n", b"\r\n"))])
    stream = await read_stream(hub, None, b"\n\n", by_ref=True)
    stream = stream[stream.index(b"id: 0-1\n") :]
    event = stream[: stream.index(b"\n\n")].decode()
    data = "\n".join(line[6:] for line in event.splitlines() if line.startswith("data: "))
    assert json.loads(data)["intervention_id"] == "iv-1"


async def test_alerts_missed_in_a_partition_that_sent_the_screen_nothing_are_told() -> None:
    """The screen was sent nothing from partition 1 (none of its alerts were buffered);
    while it was away, alerts there left the buffer unsent: it is told of the gap."""
    hub = AlertHub("127.0.0.1:9", "interventions", "customer-erasures", nobody_erased, REFS,
                   backlog=3)  # fmt: skip
    hub.ready.set()  # as if it had read the recent alerts and erasures
    hub.publish([alert(1, "c-1")])
    hub._alerts_read = {0: 2, 1: 10}  # where the fan-out reads next (1: its alerts left)
    first = await read_stream(hub, None, b'"iv-1"')
    last_id = first.split(b"id: ")[1].split(b"\n")[0].decode()
    assert last_id == "0-1.1-9"  # it names partition 1 too
    later = [alert(n, f"c-{n}") for n in range(10, 14)]
    hub.publish([Alert(f"1-{n}", a.intervention, a.raw) for n, a in enumerate(later, 10)])
    resumed = await read_stream(hub, last_id, ALERT)
    assert b'event: gap\ndata: {"missed":[{"partition":1,"after":9,"before":11}]}' in resumed


@pytest.mark.parametrize("behind", [False, True])
async def test_an_erased_customers_queued_alerts_are_not_written(behind: bool) -> None:
    """Alerts already in a screen's inbox when their customer was erased were written all
    the same; and a screen too far behind was not even told of the erasure."""
    hub = AlertHub("127.0.0.1:9", "interventions", "customer-erasures", nobody_erased, REFS)
    hub.ready.set()  # as if it had read the recent alerts and erasures
    async with TestClient(TestServer(api_app(alerts=hub))) as client:
        reply = await client.get("/v1/alerts/stream", headers=AUTH)
        await asyncio.wait_for(reply.content.readuntil(b"retry: 2000\n\n"), 5)
        last = 1000 if behind else 2  # 1,000: the inbox is full, and the hub drops it
        hub.publish([alert(1, "c-gone")] + [alert(n, f"c-{n}") for n in range(2, last + 1)])
        hub.forget("c-gone")  # before the stream could write any of them
        body = await asyncio.wait_for(reply.content.readuntil(f'"iv-{last}"'.encode()), 5)
        hub.close_all()
        body += await asyncio.wait_for(reply.content.read(), 5)
    assert b"c-gone" not in body and b'"iv-2"' in body


@pytest.mark.parametrize(
    ("last_id", "gap"),
    [("0-2", b'{"missed":[{"partition":0,"after":2,"before":4}]}'), ("0-3", None), (None, None)],
)
async def test_a_stream_resumed_from_before_the_buffer_is_told_of_the_gap(
    last_id: str | None, gap: bytes | None
) -> None:
    hub = AlertHub("127.0.0.1:9", "interventions", "customer-erasures", nobody_erased, REFS,
                   backlog=3)  # fmt: skip
    hub.ready.set()  # as if it had read the recent alerts and erasures
    hub.publish([alert(n, f"c-{n}") for n in range(1, 7)])  # 1 to 3 have left the buffer
    stream = await read_stream(hub, last_id, b'"iv-6"')
    backlog = stream.index(ALERT)
    assert stream[:backlog].count(b"event: gap") == (gap is not None)
    assert gap is None or b"event: gap\ndata: " + gap + b"\n\n" in stream[:backlog]
    assert b"event: gap" not in stream[backlog:]


async def test_a_screen_that_stops_reading_has_its_stream_ended(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its handler waited for the screen to read, forever, with the alerts it held."""
    monkeypatch.setattr(alert_stream, "WRITE_TIMEOUT_S", 0.3)
    hub = AlertHub("127.0.0.1:9", "interventions", "customer-erasures", nobody_erased, REFS)
    hub.ready.set()  # as if it had read the recent alerts and erasures
    async with TestServer(api_app(alerts=hub)) as server:
        with await small_screen(server):
            assert await within(5, lambda: bool(hub._subscribers)), "no stream started"
            # more than the connection holds, fewer than the inbox: the hub keeps it
            hub.publish([alert(n, f"c-{n}", ["x" * 10_000]) for n in range(900)])
            started = time.monotonic()
            assert await within(5, lambda: not hub._subscribers), "the stream still waits"
            assert time.monotonic() - started < 3  # cut off once a write took 0.3 s


async def test_a_burst_of_alerts_reaches_a_screen_reading_at_full_speed() -> None:
    """Kafka's batches of alerts (up to 500 each) handed on one turn of the loop after
    another: the stream took a turn or more per alert, so the inbox passed its bound of
    1,000 waiting within three batches, and every screen was cut off (losing alerts)."""
    hub = AlertHub("127.0.0.1:9", "interventions", "customer-erasures", nobody_erased, REFS)
    hub.ready.set()  # as if it had read the recent alerts and erasures
    burst = 4_000
    async with TestClient(TestServer(api_app(alerts=hub))) as client:
        reply = await client.get("/v1/alerts/stream", headers=AUTH)
        assert reply.status == 200
        assert await within(5, lambda: bool(hub._subscribers)), "no stream started"
        for start in range(0, burst, 500):
            hub.publish([alert(n, f"c-{n}") for n in range(start, start + 500)])
            await asyncio.sleep(0)  # the next batch, as Kafka's consumer hands it on
        received = b""
        while received.count(ALERT) < burst and hub._subscribers:
            received += await asyncio.wait_for(reply.content.readany(), 5)
        still_open = bool(hub._subscribers)
        hub.close_all()
        received += await asyncio.wait_for(reply.content.read(), 5)
    assert still_open, f"the stream was ended after {received.count(ALERT)} alerts"
    assert received.count(ALERT) == burst


async def small_screen(server: TestServer, headers: bytes = b"") -> socket.socket:
    """A screen's connection that holds little (4 KB), its alert stream asked for."""
    loop = asyncio.get_running_loop()
    screen = socket.socket()
    screen.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    screen.setblocking(False)
    await loop.sock_connect(screen, (server.host, server.port))
    head = b"GET /v1/alerts/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer backend-key\r\n"
    await loop.sock_sendall(screen, head + headers + b"\r\n")
    return screen


async def within(seconds: float, check: Callable[[], bool]) -> bool:
    """Whether ``check`` holds within ``seconds``."""
    for _ in range(int(seconds / 0.02)):
        if check():
            return True
        await asyncio.sleep(0.02)
    return check()


def queued(n: int, queue: str) -> Alert:
    """An alert at offset ``n`` of partition 0, for ``queue``."""
    raw = json.dumps({
        "intervention_id": f"iv-{n}", "customer_id": f"c-{n}", "ts": "2026-11-23T10:00:00Z",
        "kind": "retention_call", "priority": 1, "queue": queue, "trigger_event_id": None,
        "reasons": [], "suggested_action": "Call them.",
    }).encode()  # fmt: skip
    return Alert(f"0-{n}", decode_intervention(raw), raw)


async def test_a_quiet_queues_screen_is_told_where_it_is_and_resumes_without_a_gap() -> None:
    """A billing screen gets its one alert; then 600 of another queue's pass it by (more
    than the buffer keeps). A quiet moment later it is told where the stream is, and,
    resuming from there, is told of no gap: every alert of its own reached it."""
    hub = AlertHub("127.0.0.1:9", "interventions", "customer-erasures", nobody_erased, REFS)
    hub.ready.set()  # as if it had read the recent alerts and erasures
    billing = {"queue": "billing", "erasures": "ref"}
    async with TestClient(TestServer(api_app(QUICK, alerts=hub))) as client:
        reply = await client.get("/v1/alerts/stream", headers=AUTH, params=billing)
        await asyncio.wait_for(reply.content.readuntil(b"retry: 2000\n\n"), 5)
        hub.publish([queued(1, "billing")])
        hub.publish([queued(n, "retention") for n in range(2, 602)])
        told = await asyncio.wait_for(reply.content.readuntil(b"event: position\n"), 5)
        hub.close_all()
        await asyncio.wait_for(reply.content.read(), 5)
    ids = [line[4:].decode() for line in told.split(b"\n") if line.startswith(b"id: ")]
    assert ids == ["0-1", "0-601"]  # its alert's, then where the stream had got to
    assert b"iv-2" not in told  # the other queue's alerts were not sent
    resumed = await read_stream(hub, ids[-1], b"retry: 2000\n\n", by_ref=True)
    assert b"event: gap" not in resumed
    stale = await read_stream(hub, ids[0], b"event: gap", by_ref=True)
    assert b'"after":1' in stale  # resuming from its last alert instead: 2 to 101 are gone


@pytest.mark.parametrize(
    ("hub", "where"), [(buffered_hub, b"id: 0-7\n"), (lambda: ready_hub(), b"")],
    ids=["passed", "none"],
)  # fmt: skip
async def test_a_quiet_stream_keeps_alive_with_an_event_a_page_hears(
    hub: Callable[[], AlertHub], where: bytes
) -> None:
    """A quiet stream's keep-alive was an SSE comment, which EventSource never hands a
    page: a screen whose stream stalled (a proxy, a node gone without closing it) could
    not tell it from a quiet one, and stayed "Live", deaf. It is a `position` event now,
    with the id to resume from; none while the stream has passed nothing (an empty id
    would reset the screen's)."""
    alerts = hub()
    async with TestClient(TestServer(api_app(QUICK, alerts=alerts))) as client:
        reply = await client.get("/v1/alerts/stream", headers=AUTH)
        told = b""
        # the retry, the buffered alert if any, then two quiet moments
        while told.count(b"\n\n") < 3 + bool(where):
            told += await asyncio.wait_for(reply.content.readuntil(b"\n\n"), 5)
        alerts.close_all()
        await asyncio.wait_for(reply.content.read(), 5)
    assert b": keep-alive" not in told
    assert told.endswith((where + b"event: position\ndata: {}\n\n") * 2), told


def ready_hub() -> AlertHub:
    """A hub (never connected to Kafka) with nothing read, and ready."""
    hub = AlertHub("127.0.0.1:9", "interventions", "customer-erasures", nobody_erased, REFS)
    hub.ready.set()
    return hub


async def test_a_key_out_of_streams_retries_after_one_keep_alive() -> None:
    """A gone screen's seat comes back at its stream's next write, a keep-alive away at
    most: the 429's Retry-After is MOMENTS_API_ALERT_KEEPALIVE_S, in whole seconds."""
    hub = ready_hub()
    settings = Settings(api_keys=KEYS, api_cors_origins=SHOP, api_alert_keepalive_s=7.5,
                        api_max_streams_per_key=1)  # fmt: skip
    async with TestClient(TestServer(api_app(settings, alerts=hub))) as client:
        first = await client.get("/v1/alerts/stream", headers=AUTH)
        await asyncio.wait_for(first.content.readuntil(b"retry: 2000\n\n"), 5)
        second = await client.get("/v1/alerts/stream", headers=AUTH)
        body = await second.json()
        hub.close_all()
        await asyncio.wait_for(first.content.read(), 5)
    assert (second.status, body["error"], second.headers["Retry-After"]) == (
        429, "too_many_streams", "8",
    )  # fmt: skip


async def test_a_stream_that_ends_after_passing_others_alerts_says_where_it_is() -> None:
    """The process stops (or the screen fell behind) right after 600 of another queue's
    alerts passed a billing screen: its last words are where it is, so that it resumes
    there without a gap (it resumed from its last alert, told of a gap of others')."""
    hub = AlertHub("127.0.0.1:9", "interventions", "customer-erasures", nobody_erased, REFS)
    hub.ready.set()  # as if it had read the recent alerts and erasures
    billing = {"queue": "billing", "erasures": "ref"}
    async with TestClient(TestServer(api_app(alerts=hub))) as client:
        reply = await client.get("/v1/alerts/stream", headers=AUTH, params=billing)
        await asyncio.wait_for(reply.content.readuntil(b"retry: 2000\n\n"), 5)
        hub.publish([queued(1, "billing")])
        hub.publish([queued(n, "retention") for n in range(2, 602)])
        hub.close_all()
        told = await asyncio.wait_for(reply.content.read(), 5)
    ids = [line[4:].decode() for line in told.split(b"\n") if line.startswith(b"id: ")]
    assert ids == ["0-1", "0-601"] and told.rstrip().endswith(b"event: position\ndata: {}")


async def test_a_streams_connection_is_dropped_once_writes_go_unacknowledged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A screen whose machine left the network acknowledges nothing: the kernel drops its
    connection after the write timeout (keep-alives keep something in flight), so that its
    seat is freed; before, only a full connection ever timed a write out."""
    seen: list[int] = []

    def spy(request: web.Request) -> None:
        real_drop(request)
        sock = request.transport.get_extra_info("socket")  # type: ignore[union-attr]
        seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT))

    real_drop = alert_stream.drop_when_unacknowledged
    monkeypatch.setattr(alert_stream, "drop_when_unacknowledged", spy)
    async with TestClient(TestServer(api_app(alerts=buffered_hub()))) as client:
        reply = await client.get("/v1/alerts/stream", headers=AUTH)
        assert reply.status == 200
        await reply.content.readuntil(ALERT)
        reply.close()
    assert seen == [int(alert_stream.WRITE_TIMEOUT_S * 1000)]


async def test_a_screen_gone_after_passing_others_alerts_ends_its_stream_without_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As ``moments api`` runs the view (it is not cancelled when the screen goes), the
    stream ends at the next notice; it failed on the connection that was gone."""
    hub = AlertHub("127.0.0.1:9", "interventions", "customer-erasures", nobody_erased, REFS)
    hub.ready.set()
    async with served_as_moments_api(hub) as port:
        async with aiohttp.ClientSession() as session:
            reply = await session.get(f"http://127.0.0.1:{port}/v1/alerts/stream",
                                      headers=AUTH, params={"queue": "billing"})  # fmt: skip
            await asyncio.wait_for(reply.content.readuntil(b"retry: 2000\n\n"), 5)
            hub.publish([queued(1, "billing")])
            await asyncio.wait_for(reply.content.readuntil(ALERT), 5)
            hub.publish([queued(n, "retention") for n in range(2, 5)])  # passed by
            await asyncio.sleep(0.1)
            reply.close()  # the screen goes
        await asyncio.sleep(0.2)
        hub.publish([queued(5, "retention")])  # wakes the stream up to see it
        assert await within(5, lambda: not hub._subscribers), "the stream still runs"
        await asyncio.sleep(0.1)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_alerts_leaving_the_buffer_while_the_head_is_written_are_still_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A resumed stream's head (its erasure notices) takes a while to write, to a slow
    screen; alerts that arrive meanwhile push the oldest out of the buffer. Those were
    buffered when the screen resumed: it is sent them all the same."""
    hub = AlertHub("127.0.0.1:9", "interventions", "customer-erasures", nobody_erased, REFS,
                   backlog=5)  # fmt: skip
    hub.ready.set()
    hub.publish([queued(n, "vip") for n in range(1, 6)])  # the buffer: 1 to 5
    write, heads = alert_stream._write, []

    async def slow_head(request: web.Request, response: web.StreamResponse, data: bytes) -> None:
        if not heads:  # the first write is the head
            heads.append(data)
            await asyncio.sleep(0.05)
        await write(request, response, data)

    monkeypatch.setattr(alert_stream, "_write", slow_head)
    async with TestClient(TestServer(api_app(alerts=hub))) as client:
        reply = await client.get("/v1/alerts/stream", headers={**AUTH, "Last-Event-ID": "0-0"})
        await asyncio.sleep(0.01)
        hub.publish([queued(6, "vip"), queued(7, "vip")])  # while the head is written: 1, 2 leave
        stream = await asyncio.wait_for(reply.content.readuntil(b'"iv-7"'), 5)
        hub.close_all()
        stream += await asyncio.wait_for(reply.content.read(), 5)
    sent = [line[4:].decode() for line in stream.split(b"\n") if line.startswith(b"id: ")]
    assert sent[:7] == [f"0-{n}" for n in range(1, 8)]
    assert b"event: gap" not in stream


async def test_a_gap_is_told_once_and_resuming_from_the_position_after_it_tells_none() -> None:
    """A partition whose alerts after the position had all left the buffer: the stream's
    position there never moved, and every reconnection told the same gap again."""
    hub = AlertHub("127.0.0.1:9", "interventions", "customer-erasures", nobody_erased, REFS,
                   backlog=3)  # fmt: skip
    hub.ready.set()  # as if it had read the recent alerts and erasures
    hub.publish([alert(n, f"c-{n}") for n in range(1, 7)])  # 1 to 3 have left the buffer
    first = await read_stream(hub, "0-1", b'"iv-6"')
    assert first.count(b"event: gap") == 1
    head = first[: first.index(ALERT)]
    assert b"id: 0-3\nevent: position\n" in head  # passed, as told: resume from there
    again = await read_stream(hub, "0-3", b'"iv-6"')
    assert b"event: gap" not in again and b'"iv-4"' in again


async def test_a_partition_empty_when_the_screen_connected_is_told_as_a_gap() -> None:
    """Partition 1 had no alert when the screen's position was taken, so the position
    did not name it; alerts there that left the buffer while it was away went untold."""
    hub = AlertHub("127.0.0.1:9", "interventions", "customer-erasures", nobody_erased, REFS,
                   backlog=3)  # fmt: skip
    hub.ready.set()  # as if it had read the recent alerts and erasures
    hub.publish([alert(9, "c-9")])
    later = [alert(n, f"c-{n}") for n in range(3)]
    hub.publish([Alert(f"1-{n}", a.intervention, a.raw) for n, a in enumerate(later)])
    hub.publish([alert(10, "c-10")])  # 1-0 leaves the buffer (it holds 3)
    stream = await read_stream(hub, "0-9", b'"iv-10"')
    assert b'event: gap\ndata: {"missed":[{"partition":1,"after":-1,"before":1}]}' in stream


async def test_the_backlog_is_checked_against_the_tombstones() -> None:
    """An erasure made on another API process whose record never reached this one (Kafka
    failed it): the erased customer's buffered alert was sent to every screen opened."""

    async def c1_erased(customer_ids: Sequence[str]) -> list[bool]:
        return [c == "c-1" for c in customer_ids]

    hub = AlertHub("127.0.0.1:9", "interventions", "customer-erasures", c1_erased, REFS)
    hub.ready.set()  # as if it had read the recent alerts and erasures
    hub.publish([alert(1, "c-1"), alert(2, "c-2")])  # checked before the tombstone
    stream = await read_stream(hub, None, b'"iv-2"')
    assert b'"c-1"' not in stream and b'"iv-1"' not in stream
    assert "c-1" in hub.erased_lately  # and dropped from the buffer
    assert [a.id for a in hub.since(StreamPosition(), None)] == ["0-2"]


async def test_a_stream_opened_while_redis_is_away_still_sends_its_backlog(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The backlog's tombstone check waited on Redis for as long as it was away: the
    stream wrote nothing, not even keep-alives, and held its seat."""
    from feature_store import StoreUnavailable

    async def redis_away(customer_ids: Sequence[str]) -> list[bool]:
        raise StoreUnavailable("ConnectionError: Redis went away")

    monkeypatch.setattr(alert_stream, "BACKLOG_CHECK_S", 0.2)
    hub = AlertHub("127.0.0.1:9", "interventions", "customer-erasures", redis_away, REFS,
                   retry_s=0.05)  # fmt: skip
    hub.ready.set()  # as if it had read the recent alerts and erasures
    hub.publish([alert(1, "c-1")])  # checked when it came
    stream = await read_stream(hub, None, b'"iv-1"')
    assert b'"iv-1"' in stream


async def test_a_queue_screen_resuming_soon_after_it_connected_is_told_no_false_gap() -> None:
    """Its last id named only the partitions before its last alert: a partition of other
    queues' alerts later in the backlog was unnamed, and a resume then told a gap there
    (the console's "some alerts were missed") though nothing was."""

    def queued_at(partition: int, n: int, queue: str) -> Alert:
        found = queued(n, queue)
        return Alert(f"{partition}-{n}", found.intervention, found.raw)

    hub = AlertHub("127.0.0.1:9", "interventions", "customer-erasures", nobody_erased, REFS)
    # a fresh process on a topic with history reads each partition from near its end
    hub._gaps.never_read(0, before=0)
    hub._gaps.never_read(1, before=50)
    hub._alerts_read = {0: 3, 1: 52}
    hub.publish([queued_at(0, 1, "vip"), queued_at(0, 2, "vip"),
                 queued_at(1, 50, "billing"), queued_at(1, 51, "billing")])  # fmt: skip
    hub.ready.set()
    async with TestClient(TestServer(api_app(alerts=hub))) as client:
        reply = await client.get("/v1/alerts/stream", headers=AUTH, params={"queue": "vip"})
        first = await asyncio.wait_for(reply.content.readuntil(b"event: position\n"), 5)
        hub.close_all()
    last = first.split(b"id: ")[-1].split(b"\n")[0].decode()
    assert last == "0-2.1-51"  # the billing alerts passed, named before any drop
    async with TestClient(TestServer(api_app(alerts=hub))) as client:
        reply = await client.get("/v1/alerts/stream", params={"queue": "vip"},
                                 headers={**AUTH, "Last-Event-ID": last})  # fmt: skip
        head = await asyncio.wait_for(reply.content.readuntil(b"retry: 2000\n\n"), 5)
        hub.close_all()
        head += await asyncio.wait_for(reply.content.read(), 5)
    assert b"event: gap" not in head


async def test_alerts_are_unnamed_events_unless_a_screen_asks_for_their_old_name() -> None:
    """EventSource's onmessage hears only unnamed events: a screen written to the
    contract's plain "Server-Sent Events of interventions" heard none while alerts were
    named; one written when they were asks for the name."""
    async with TestClient(TestServer(api_app(alerts=buffered_hub()))) as client:
        wrong = await client.get("/v1/alerts/stream", headers=AUTH,
                                 params={"alert_event": "alert"})  # fmt: skip
        assert wrong.status == 400
        assert (await wrong.json())["error"] == "invalid_alert_event"
    for query, first in (({}, b"id: 0-7\ndata: {"),
                         ({"alert_event": "intervention"},
                          b"id: 0-7\nevent: intervention\ndata: {")):  # fmt: skip
        hub = buffered_hub()
        async with TestClient(TestServer(api_app(alerts=hub))) as client:
            reply = await client.get("/v1/alerts/stream", headers=AUTH, params=query)
            start = await asyncio.wait_for(reply.content.readuntil(b'"intervention_id"'), 5)
            hub.close_all()
        assert start.startswith(b"retry: 2000\n\n" + first), start
    # a deployment whose screens listen for the name: MOMENTS_API_ALERT_EVENT, which a
    # screen may still override with an empty alert_event
    named = Settings(api_keys=KEYS, api_alert_event="intervention")
    for query, first in (({}, b"id: 0-7\nevent: intervention\ndata: {"),
                         ({"alert_event": ""}, b"id: 0-7\ndata: {")):  # fmt: skip
        hub = buffered_hub()
        async with TestClient(TestServer(api_app(named, alerts=hub))) as client:
            reply = await client.get("/v1/alerts/stream", headers=AUTH, params=query)
            start = await asyncio.wait_for(reply.content.readuntil(b'"intervention_id"'), 5)
            hub.close_all()
        assert start.startswith(b"retry: 2000\n\n" + first), start


async def test_a_queue_screen_resuming_past_other_queues_alerts_that_left_moves_past() -> None:
    """Only billing alerts left partition 0 after a vip screen's position: it is told no
    gap, and its id moves past them, so that a resume on a process that never read them
    (started since) tells it no gap either."""

    def at(partition: int, n: int, queue: str) -> Alert:
        found = queued(100 * partition + n, queue)  # ids of their own
        return Alert(f"{partition}-{n}", found.intervention, found.raw)

    async def resumed(hub: AlertHub, last_id: str) -> tuple[bytes, str]:
        hub.ready.set()
        async with TestClient(TestServer(api_app(alerts=hub))) as client:
            reply = await client.get("/v1/alerts/stream", params={"queue": "vip"},
                                     headers={**AUTH, "Last-Event-ID": last_id})  # fmt: skip
            await asyncio.sleep(0.3)  # what it is sent at once
            hub.close_all()
            body = await asyncio.wait_for(reply.content.read(), 5)
        ids = [line[4:].decode() for line in body.splitlines() if line.startswith(b"id: ")]
        return body, ids[-1] if ids else last_id

    first = AlertHub("127.0.0.1:9", "interventions", "customer-erasures", nobody_erased, REFS,
                     backlog=4)  # fmt: skip
    first._gaps.never_read(0, before=0)
    first._gaps.never_read(1, before=0)
    first.publish([at(0, 0, "vip"), *(at(0, n, "billing") for n in range(1, 6)),
                   *(at(1, n, "billing") for n in range(4))])  # fmt: skip
    first._alerts_read = {0: 6, 1: 4}
    body, last = await resumed(first, "0-0.1-0")
    assert b"event: gap" not in body and last == "0-5.1-3", (body, last)
    later = AlertHub("127.0.0.1:9", "interventions", "customer-erasures", nobody_erased, REFS)
    later._gaps.never_read(0, before=4)  # started since: read partition 0 from offset 4
    later._gaps.never_read(1, before=2)
    later.publish([at(0, 4, "billing"), at(0, 5, "billing"), at(1, 2, "billing"),
                   at(1, 3, "billing")])  # fmt: skip
    later._alerts_read = {0: 6, 1: 4}
    body, _ = await resumed(later, last)
    assert b"event: gap" not in body, body
    body, _ = await resumed(later, "0-0.1-0")  # from before them: never read here, told
    assert b"event: gap" in body, body


def narrow(monkeypatch: pytest.MonkeyPatch) -> None:
    """Streams' connections hold little in the kernel, as over a slow link."""
    real_drop = alert_stream.drop_when_unacknowledged

    def small_buffers(request: web.Request) -> None:
        real_drop(request)
        sock = request.transport.get_extra_info("socket")  # type: ignore[union-attr]
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        request.transport.set_write_buffer_limits(high=8192)  # type: ignore[union-attr]

    monkeypatch.setattr(alert_stream, "drop_when_unacknowledged", small_buffers)


async def test_a_resumed_screen_reading_its_erasures_slowly_but_steadily_is_not_cut_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Told of many erasures on resuming, over a slow link, it took longer than the write
    timeout to read them all, though it read all the while: its stream was cut off there
    each time it resumed, and it never saw an alert."""
    # (a timeout of 0.4 s cut it off on a machine busy enough to hold the reader back
    # that long between two reads of its own)
    monkeypatch.setattr(alert_stream, "WRITE_TIMEOUT_S", 1.0)
    monkeypatch.setattr(alert_stream, "CHUNK_BYTES", 4096)
    narrow(monkeypatch)
    hub = AlertHub("127.0.0.1:9", "interventions", "customer-erasures", nobody_erased, REFS)
    hub.ready.set()
    hub.publish([alert(1, "c-1")])
    for n in range(6_000):  # some 400 KB of notices, read in no less than two seconds
        hub.forget(f"gone-{n}")
    loop = asyncio.get_running_loop()
    async with TestServer(api_app(alerts=hub)) as server:
        with await small_screen(server, b"Last-Event-ID: 0-0\r\n") as screen:
            read = b""
            while b'"iv-1"' not in read:
                part = await asyncio.wait_for(loop.sock_recv(screen, 2048), 5)
                assert part, f"cut off after {len(read)} bytes"
                read += part
                await asyncio.sleep(0.01)
    assert read.count(b"event: erasure\n") == 6_000


async def test_a_stream_keeps_none_of_what_it_sent_as_it_started() -> None:
    """A console's stream lasts a shift: the erasure notices it was told first (up to
    10,000, some 660 KB) and the alerts buffered when it connected stayed with it for
    good, and an API's memory grew with every screen."""
    hub = AlertHub("127.0.0.1:9", "interventions", "customer-erasures", nobody_erased, REFS)
    hub.ready.set()
    hub.publish([alert(n, f"c-{n}") for n in range(1, 50)])
    for n in range(500):
        hub.forget(f"gone-{n}")
    async with TestClient(TestServer(api_app(alerts=hub))) as client:
        reply = await client.get("/v1/alerts/stream", headers={**AUTH, "Last-Event-ID": "0-0"})
        await asyncio.wait_for(reply.content.readuntil(b'"iv-49"'), 5)
        await asyncio.sleep(0.05)  # waiting for the next alert
        (frame,) = stream_frames()
        kept = {name: frame.f_locals.get(name) for name in ("head", "erasures", "backlog")}
        hub.close_all()
        await asyncio.wait_for(reply.content.read(), 5)
    assert kept == {"head": b"", "erasures": [], "backlog": []}


def stream_frames() -> list[Any]:
    """The frames of the alert streams running now."""
    found = []
    for task in asyncio.all_tasks():
        coro: Any = task.get_coro()
        while coro is not None and hasattr(coro, "cr_code"):
            if coro.cr_code is alert_stream._stream.__code__:
                found.append(coro.cr_frame)
            coro = coro.cr_await
    return found


async def test_a_screen_gone_while_its_stream_is_set_up_is_no_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A screen resuming from an id ahead of this process waits while the broker is
    asked where it is; one that left meanwhile was an ERROR with a traceback, and a 500."""

    class AskingHub(AlertHub):
        async def position(self, event_id: str | None) -> StreamPosition:
            await asyncio.sleep(0.3)  # the broker asked for its partitions' ends
            return await super().position(event_id)

    hub = AskingHub("127.0.0.1:9", "interventions", "customer-erasures", nobody_erased, REFS)
    hub.ready.set()
    async with served_as_moments_api(hub) as port:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /v1/alerts/stream HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 0-99\r\n"
                     b"Authorization: Bearer backend-key\r\n\r\n")  # fmt: skip
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.transport.abort()  # the screen goes before its stream's headers are sent
        await asyncio.sleep(0.6)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
