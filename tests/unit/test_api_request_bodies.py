"""A body that cannot be read (its compression is corrupt) is a 400, not a 500."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import socket
import zlib
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from streams.api import ingest_views
from streams.api.errors import Handler
from streams.api.protocol_errors import JsonErrorsAppRunner
from streams.api.server import API_KEY
from streams.settings import Settings
from tests.unit.api_app import KEYS, SHOP, VISITOR, api_app, raw_request


def post(path: str, body: bytes, *headers: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: api\r\nX-API-Key: backend-key\r\n".encode()
        + b"Content-Type: application/json\r\n"
        + b"".join(h + b"\r\n" for h in headers)
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


@pytest.mark.parametrize("path", ["/v1/events", "/v1/outcomes"])
@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        (b"gzip", b"notgzip"),
        (b"deflate", b"not deflate"),
        (b"gzip", gzip.compress(b'{"type": "web_click"}')[:10] + b"garbage"),
    ],
    ids=["gzip-not-compressed", "deflate-not-compressed", "gzip-cut-short"],
)
async def test_a_body_that_does_not_decompress_is_malformed(
    path: str, encoding: bytes, body: bytes
) -> None:
    async with TestServer(api_app()) as server:
        reply = await raw_request(server, post(path, body, b"Content-Encoding: " + encoding))
    assert reply.status == 400
    assert reply.json["error"] == "malformed_body"


@pytest.mark.parametrize("path", ["/v1/events", "/v1/outcomes"])
async def test_a_body_cut_short_of_its_length_is_a_client_error(
    path: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The client stopped sending (an upload aborted): the request counts as a 400, not
    as a 500 logged as an unexpected error (no reply reaches a client that has gone)."""
    request = post(path, b'{"type": "web_click", "event_id": "e1", "customer_id": "c1"}')
    request = request.replace(b"Content-Length: 60", b"Content-Length: 100")
    answered: list[tuple[int, bytes]] = []

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        assert isinstance(response, web.Response) and isinstance(response.body, bytes)
        answered.append((response.status, response.body))
        return response

    app = api_app()
    app.middlewares.insert(0, record)
    # served as `moments api` serves (TestServer would cancel the view when the client
    # goes, which the API's server does not)
    runner = JsonErrorsAppRunner(app, access_log=None)
    await runner.setup()
    site = web.SockSite(runner, socket.create_server(("127.0.0.1", 0)))
    await site.start()
    try:
        reader, writer = await asyncio.open_connection(*site._sock.getsockname()[:2])
        writer.write(request)
        writer.write_eof()
        await writer.drain()
        await asyncio.wait_for(reader.read(), 10)
        writer.close()
        for _ in range(100):  # the view goes on after the connection is gone
            if answered:
                break
            await asyncio.sleep(0.02)
    finally:
        await runner.cleanup()
    [(status, body)] = answered
    assert status == 400 and json.loads(body)["error"] == "incomplete_body"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


class _Publisher:
    """Takes the records the views would write to Kafka."""

    def publish(self, topic: str, records: Any, linger: bool = True) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


_ITEM = {
    "/v1/events": '{"type":"web_click","event_id":"e1","customer_id":"c1",'
    '"ts":"2026-01-01T00:00:00Z","page":"/","extra":%s}',
    "/v1/outcomes": '{"decision_id":"d","customer_id":"c","offer_id":"o","outcome":"shown",'
    '"ts":"2026-01-01T00:00:00Z","extra":%s}',
}


@pytest.mark.parametrize("path", ["/v1/events", "/v1/outcomes"])
async def test_no_depth_of_nesting_is_answered_with_a_500(path: str) -> None:
    """The body is decoded, then each item again a few frames deeper: a depth between
    the two limits used to pass the first and fail the second with a RecursionError."""
    statuses = set()
    app = api_app(publisher=_Publisher())
    async with TestServer(app) as server:
        for depth in range(800, 1100, 2):
            body = (_ITEM[path] % ("[" * depth + "]" * depth)).encode()
            reply = await raw_request(server, post(path, body))
            statuses.add(reply.status)
            assert reply.status < 500, (depth, reply.json)
    assert 202 in statuses and statuses - {202} <= {400, 422}


@pytest.mark.parametrize("path", ["/v1/events", "/v1/outcomes"])
async def test_compressed_bodies_are_inflated_by_the_api_after_the_key_check(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiohttp no longer inflates a body on arrival (one that inflated to gigabytes held
    the event loop for seconds, sent without a key): the view does, once the key is
    checked, never past the body limit."""
    seen: list[bytes] = []
    real = ingest_views.inflated

    def recorded(raw: bytes, encoding: str, limit: int) -> bytes:
        seen.append(raw)
        return real(raw, encoding, limit)

    monkeypatch.setattr(ingest_views, "inflated", recorded)
    item = (_ITEM[path] % "null").encode()
    app = api_app(publisher=_Publisher())
    bomb = gzip.compress(b" " * (4 * 1024 * 1024))  # 4 MiB of blanks, a few KiB sent
    async with TestServer(app) as server:
        for encoding, body in ((b"gzip", gzip.compress(item)), (b"deflate", zlib.compress(item))):
            reply = await raw_request(server, post(path, body, b"Content-Encoding: " + encoding))
            assert reply.status == 202, reply.json
        assert [raw[:2] for raw in seen] == [b"\x1f\x8b", b"\x78\x9c"]  # as sent: compressed
        keyless = post(path, bomb, b"Content-Encoding: gzip").replace(
            b"X-API-Key: backend-key\r\n", b""
        )
        reply = await raw_request(server, keyless)
        assert reply.status == 401 and len(seen) == 2  # refused before any inflating
        reply = await raw_request(server, post(path, bomb, b"Content-Encoding: gzip"))
        assert reply.status == 413 and reply.json["error"] == "body_too_large"
        reply = await raw_request(server, post(path, item, b"Content-Encoding: br"))
        assert reply.status == 415 and reply.json["error"] == "unsupported_content_encoding"


async def test_a_gzip_body_of_several_members_is_read_as_one() -> None:
    """RFC 1952 lets a gzip body be members one after the other (what appending to a
    .gz file makes): it was a 400; the limit holds over all of them."""
    item = (_ITEM["/v1/events"] % "null").encode()
    body = b"[" + item + b"," + item.replace(b'"e1"', b'"e2"') + b"]"
    app = api_app(publisher=_Publisher())
    members = gzip.compress(body[:10]) + gzip.compress(body[10:])
    half = gzip.compress(b" " * (600 * 1024))  # two of them: over the 1 MiB limit
    async with TestServer(app) as server:
        reply = await raw_request(server, post("/v1/events", members, b"Content-Encoding: gzip"))
        assert reply.status == 202 and reply.json["accepted"] == 2, reply.json
        reply = await raw_request(server, post("/v1/events", half + half,
                                               b"Content-Encoding: gzip"))  # fmt: skip
        assert reply.status == 413 and reply.json["error"] == "body_too_large"
        garbage = gzip.compress(body) + b"not gzip"
        reply = await raw_request(server, post("/v1/events", garbage, b"Content-Encoding: gzip"))
        assert reply.status == 400 and reply.json["error"] == "malformed_body"


async def test_100_continue_invites_a_body_only_from_a_key_that_may_send_it() -> None:
    """aiohttp answered 100 Continue before any key was checked: a client with none was
    invited to send its megabyte. Now it is refused first, as the route would refuse it."""
    app = api_app(publisher=_Publisher())
    item = (_ITEM["/v1/events"] % "null").encode()
    asking = post("/v1/events", item, b"Expect: 100-continue")
    async with TestServer(app) as server:
        keyless = asking.replace(b"X-API-Key: backend-key\r\n", b"")
        reply = await raw_request(server, keyless)
        assert reply.status == 401 and reply.json["error"] == "unauthorized", reply
        outside = asking.replace(b"X-API-Key: backend-key", b"X-API-Key: page-key\r\nOrigin: "
                                 + SHOP.encode())  # fmt: skip
        reply = await raw_request(server, outside)  # recommend and outcomes only
        assert reply.status == 403 and reply.json["error"] == "forbidden", reply
        reply = await raw_request(server, asking)
        assert reply.status == 100 and reply.body.startswith(b"HTTP/1.1 202 "), reply


async def test_100_continue_invites_no_body_from_a_key_over_its_rate() -> None:
    """The rate was checked after the body had come: a key over it uploaded its megabyte
    to be told 429. Asking takes no token: the request sent after it is the one counted."""
    app = api_app(publisher=_Publisher())
    limiter = app[API_KEY].limiter.keys  # the back end's key: one bucket
    item = (_ITEM["/v1/events"] % "null").encode()
    asking = post("/v1/events", item, b"Expect: 100-continue")
    async with TestServer(app) as server:
        reply = await raw_request(server, asking)
        assert reply.status == 100 and reply.body.startswith(b"HTTP/1.1 202 "), reply
        left = limiter._buckets["backend"].tokens
        assert limiter.burst - 1.5 < left <= limiter.burst - 1  # one request, one token
        limiter.rate = 1e-6  # none comes back while the next request is on its way (at
        # the test's own rate, one did within milliseconds on a busy machine)
        while limiter.allow("backend") == 0.0:
            pass  # every token spent
        reply = await raw_request(server, asking)
        assert reply.status == 429 and reply.json["error"] == "rate_limited", reply
        assert b"HTTP/1.1 100" not in reply.head


async def _head_of_answer_before_the_body(server: TestServer, request: bytes) -> bytes:
    """The head answered to ``request``'s head, its announced body never sent."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(request.partition(b"\r\n\r\n")[0] + b"\r\n\r\n")
        await writer.drain()
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    finally:
        writer.close()


async def test_a_refusal_before_the_body_closes_the_connection() -> None:
    """The connection was kept: a client that, refused, sent no body and its next request
    on the same connection had that request read as the body, and never answered."""
    app = api_app(publisher=_Publisher())
    limiter = app[API_KEY].limiter.keys  # the back end's key: one bucket
    item = (_ITEM["/v1/events"] % "null").encode()
    asking = post("/v1/events", item, b"Expect: 100-continue")
    async with TestServer(app) as server:
        head = await _head_of_answer_before_the_body(server, asking)
        assert head.startswith(b"HTTP/1.1 100 ") and b"close" not in head.lower(), head
        keyless = asking.replace(b"X-API-Key: backend-key\r\n", b"")
        outside = asking.replace(b"X-API-Key: backend-key", b"X-API-Key: page-key\r\nOrigin: "
                                 + SHOP.encode())  # fmt: skip
        expecting = asking.replace(b"100-continue", b"jane-doe-42")
        for request, status in ((keyless, b"401"), (outside, b"403"), (expecting, b"417")):
            head = await _head_of_answer_before_the_body(server, request)
            assert head.startswith(b"HTTP/1.1 " + status) and b"Connection: close" in head, head
        limiter.rate = 1e-6
        while limiter.allow("backend") == 0.0:
            pass  # every token spent
        head = await _head_of_answer_before_the_body(server, asking)
        assert head.startswith(b"HTTP/1.1 429") and b"Connection: close" in head, head


async def test_a_body_announced_over_the_limit_is_refused_before_it_comes() -> None:
    """It was refused once the limit's worth had arrived (1 MiB uploaded for a 413), and
    a client asking ``Expect: 100-continue`` was invited to send it."""
    app = api_app(publisher=_Publisher())
    huge = f"Content-Length: {2 * 1024 * 1024}".encode()
    async with TestServer(app) as server:
        for path in ("/v1/events", "/v1/outcomes"):
            announced = post(path, b"[").replace(b"Content-Length: 1", huge)
            head = await _head_of_answer_before_the_body(server, announced)
            assert head.startswith(b"HTTP/1.1 413 "), head
            asking = post(path, b"[", b"Expect: 100-continue").replace(b"Content-Length: 1", huge)
            head = await _head_of_answer_before_the_body(server, asking)
            assert head.startswith(b"HTTP/1.1 413 ") and b"Connection: close" in head, head


async def test_a_key_refused_before_its_body_takes_from_its_rate_too() -> None:
    """Asking ``Expect: 100-continue``, a key refused for its scope got 403 however fast
    it came, where the same request without the header took from its rate."""
    settings = Settings(api_keys=KEYS, api_cors_origins=SHOP, api_visitor_burst=1,
                        api_visitor_rate_per_s=0.01)  # fmt: skip
    app = api_app(settings, publisher=_Publisher())
    item = (_ITEM["/v1/events"] % "null").encode()
    outside = post("/v1/events", item, b"Expect: 100-continue").replace(
        b"X-API-Key: backend-key", b"X-API-Key: page-key\r\nOrigin: " + SHOP.encode()
    )
    async with TestServer(app) as server:
        first = await raw_request(server, outside)
        assert first.status == 403 and first.json["error"] == "forbidden", first
        second = await raw_request(server, outside)
        assert second.status == 429 and second.json["error"] == "rate_limited", second
        assert b"HTTP/1.1 100" not in second.head


async def test_an_expectation_other_than_100_continue_gets_a_json_417() -> None:
    """aiohttp's own answer was plain text quoting the header, before any middleware."""
    app = api_app(publisher=_Publisher())
    async with TestServer(app) as server:
        request = b"GET /v1/offers HTTP/1.1\r\nHost: api\r\nExpect: jane-doe-42\r\n\r\n"
        reply = await raw_request(server, request)
        assert reply.status == 417 and reply.json["error"] == "expectation_failed"
        assert b"jane-doe-42" not in reply.body
        item = (_ITEM["/v1/events"] % "null").encode()
        reply = await raw_request(server, post("/v1/events", item, b"Expect: 100-continue"))
        assert reply.status == 100 and reply.body.startswith(b"HTTP/1.1 202 "), reply  # then


@pytest.mark.parametrize("line", [b"GET /nope", b"PUT /v1/events", b"OPTIONS /v1/events"])
async def test_an_expectation_on_a_path_or_method_no_route_has_gets_a_json_417(
    line: bytes,
) -> None:
    """Such a request has no route, and so no expect handler of the API's: aiohttp's
    answered in plain text quoting the header."""
    runner = JsonErrorsAppRunner(api_app(), access_log=None)  # as `moments api` serves
    await runner.setup()
    site = web.SockSite(runner, socket.create_server(("127.0.0.1", 0)))
    await site.start()
    host, port = site._sock.getsockname()[:2]  # type: ignore[union-attr]
    try:
        request = line + b" HTTP/1.1\r\nHost: api\r\nExpect: <b>jane-doe-42</b>\r\n\r\n"
        reply = await raw_request(SimpleNamespace(host=host, port=port), request)  # type: ignore[arg-type]
    finally:
        await runner.cleanup()
    assert reply.status == 417 and reply.json["error"] == "expectation_failed", reply
    assert b"jane-doe-42" not in reply.body


async def test_a_list_spoiled_at_its_end_is_charged_as_the_items_it_may_hold() -> None:
    """Splitting a list costs per item, up to the fault: one wrong byte at the end of a
    list of empty items cost the API as much as the list, and took one token where the
    list took one per 100 items (the charge on many items, got round)."""
    taken = []
    for spoiled in (False, True):
        app = api_app(Settings(api_keys=KEYS, api_cors_origins=SHOP,
                               api_visitor_rate_per_s=0.001, api_visitor_burst=400))  # fmt: skip
        body = b"[" + b"{}," * 1_999 + (b"{x]" if spoiled else b"{}]")
        headers = {"X-API-Key": "page-key", "Origin": SHOP, "Content-Type": "application/json"}
        async with TestClient(TestServer(app)) as client:
            reply = await client.post("/v1/outcomes", data=body, headers=headers)
            assert reply.status == (400 if spoiled else 413), await reply.text()
        # the page key's visitor (the test's client) is charged, not the key
        taken.append(400 - app[API_KEY].limiter.visitors._buckets[VISITOR].tokens)
    assert taken[0] == pytest.approx(20, abs=0.1)  # 2,000 items: 20 tokens
    assert taken[1] == pytest.approx(20, abs=0.1)  # (refilling 0.001 a second meanwhile)


async def test_100_continue_invites_no_body_the_process_has_no_room_for() -> None:
    """The body budget was checked once the body had come: a client asking first was
    invited to send its body, to be told 503 without its being read."""
    app = api_app(Settings(api_keys=KEYS, api_cors_origins=SHOP, api_body_budget_bytes=4000))
    head = (b"POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer backend-key\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n%s\r\n")  # fmt: skip
    async with TestServer(app) as server:
        _, trickling = await asyncio.open_connection(server.host, server.port)
        trickling.write(head % (3000, b"") + b"[")  # 3,000 bytes counted while it comes
        await trickling.drain()
        await asyncio.sleep(0.2)
        reader, asking = await asyncio.open_connection(server.host, server.port)
        asking.write(head % (2000, b"Expect: 100-continue\r\n"))
        await asking.drain()
        first = await asyncio.wait_for(reader.readline(), 5)
        assert first.startswith(b"HTTP/1.1 503"), first
        trickling.close()
        asking.close()


@pytest.mark.parametrize("path", ["/v1/events", "/v1/outcomes"])
@pytest.mark.parametrize("coding", [b"gzip, chunked", b"x-custom, chunked"])
async def test_a_body_with_a_transfer_coding_other_than_chunked_is_refused(
    path: str, coding: bytes
) -> None:
    """aiohttp reads the chunks and hands their gzip on as the body: it was answered as
    JSON that is not UTF-8. The answer now names the header; chunked alone is read."""
    item = gzip.compress((_ITEM[path] % "null").encode())
    chunked = hex(len(item))[2:].encode() + b"\r\n" + item + b"\r\n0\r\n\r\n"
    head = post(path, b"").removesuffix(b"Content-Length: 0\r\n\r\n")
    async with TestServer(api_app(publisher=_Publisher())) as server:
        reply = await raw_request(
            server, head + b"Transfer-Encoding: " + coding + b"\r\n\r\n" + chunked
        )
        assert reply.status == 400 and reply.json["error"] == "unsupported_transfer_encoding"
        plain = head + b"Content-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked
        reply = await raw_request(server, plain)
        assert reply.status == 202, reply.json
