"""What aiohttp answers itself (a request it cannot parse, an error no middleware
answers) is JSON in the API's error shape, and does not quote the request: its path,
headers and body may hold a customer id."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer, make_mocked_request
from aiohttp.web_runner import BaseRunner

from streams.api.protocol_errors import ANSWER_COUNTER, JsonErrorsAppRunner, answered_in_json
from tests.unit.api_app import RawReply, api_app, raw_request

CUSTOMER = "john smith"


class JsonErrorsTestServer(TestServer):
    """A test server on a free local port, run by the API's runner (``moments api``'s)."""

    async def _make_runner(self, **kwargs: Any) -> BaseRunner:
        return JsonErrorsAppRunner(self.app, **kwargs)


def assert_api_error(reply: RawReply, status: int, code: str) -> dict[str, Any]:
    assert reply.status == status, reply
    assert b"\r\ncontent-type: application/json" in reply.head.lower(), reply
    body = reply.json
    assert isinstance(body, dict) and set(body) == {"error", "message"}, body
    assert body["error"] == code and isinstance(body["message"], str), body
    assert b"john" not in reply.body and b"j\\xc3\\xb6hn" not in reply.body, reply
    assert "jöhn".encode() not in reply.body, reply
    return body


UNPARSABLE = {
    "space in the path": f"GET /v1/customers/{CUSTOMER}/export HTTP/1.1\r\nHost: api".encode(),
    "non-ASCII path": "GET /v1/customers/jöhn-smith/export HTTP/1.1\r\nHost: api".encode(),
    "control byte in a header": (
        b"GET /v1/customers/x HTTP/1.1\r\nHost: api\r\nX-Note: john\x01smith"
    ),
    "broken chunk": (
        b"POST /v1/events HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
        b'Transfer-Encoding: chunked\r\n\r\n11\r\n{"customer_id": "john smith"}xx\r\n0\r\n'
    ),
    "bad method": b"G\x01T /v1/customers/john-smith HTTP/1.1\r\nHost: api",
    # over aiohttp's 8190-byte line limit: aiohttp 3.14 answers 400 (not 431) for it too
    "header line too long": (
        b"GET /v1/customers/x HTTP/1.1\r\nHost: api\r\nX-Note: john smith" + b"a" * 9000
    ),
}


@pytest.mark.parametrize("request_bytes", UNPARSABLE.values(), ids=UNPARSABLE.keys())
async def test_an_unparsable_request_is_answered_in_json_without_its_content(
    request_bytes: bytes,
) -> None:
    server = JsonErrorsTestServer(api_app())
    async with server:
        reply = await raw_request(server, request_bytes)
    body = assert_api_error(reply, 400, "bad_request")
    assert body["message"].startswith("the request could not be read as HTTP ("), body


async def test_the_connection_is_closed_after_an_unparsable_request() -> None:
    """As aiohttp does: no ``Connection: close`` is sent, the server closes it anyway."""
    server = JsonErrorsTestServer(api_app())
    async with server:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        try:
            writer.write(UNPARSABLE["space in the path"] + b"\r\n\r\n")
            await writer.drain()
            reply = await asyncio.wait_for(reader.read(), 5)  # to the end: closed
        finally:
            writer.close()
    head, _, body = reply.partition(b"\r\n\r\n")
    assert_api_error(RawReply(int(head.split(b" ", 2)[1]), head, body), 400, "bad_request")


def unanswered_app(error: Exception) -> web.Application:
    """An application with no error middleware, whose one route raises ``error``."""

    async def fail(_: web.Request) -> web.StreamResponse:
        raise error

    app = web.Application()
    app.router.add_get("/v1/customers/{customer_id}", fail)
    return app


@pytest.mark.parametrize(
    ("error", "status", "code", "message"),
    [
        (RuntimeError(CUSTOMER), 500, "internal_error", "something went wrong on our side"),
        (TimeoutError(CUSTOMER), 504, "gateway_timeout",
         "the server could not answer the request (Gateway Timeout)"),
    ],
    ids=["500", "504"],
)  # fmt: skip
async def test_an_error_no_middleware_answers_is_json_with_aiohttps_status(
    error: Exception, status: int, code: str, message: str
) -> None:
    request_bytes = b"GET /v1/customers/john-smith HTTP/1.1\r\nHost: api\r\nAccept: text/html"
    server = JsonErrorsTestServer(unanswered_app(error))
    async with server:
        reply = await raw_request(server, request_bytes)
    assert assert_api_error(reply, status, code)["message"] == message


async def test_a_request_under_way_at_stopping_gets_stop_within_s_in_all() -> None:
    cancelled, started_handling = asyncio.Event(), asyncio.Event()

    async def never_ends(_: web.Request) -> web.StreamResponse:
        started_handling.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        raise AssertionError("unreachable")

    app = web.Application()
    app.router.add_get("/slow", never_ends)
    runner = JsonErrorsAppRunner(app, stop_within_s=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /slow HTTP/1.1\r\nHost: api\r\n\r\n")
    await writer.drain()
    await asyncio.wait_for(started_handling.wait(), 5)  # the handler is under way
    loop = asyncio.get_running_loop()
    started = loop.time()
    await runner.cleanup()
    took = loop.time() - started
    writer.close()
    assert cancelled.is_set()
    assert 0.45 <= took < 1.6, took  # not aiohttp's own timeout, 2 s


async def test_an_error_escaping_the_handler_is_counted_as_answered() -> None:
    seen: list[int] = []
    app = web.Application()
    app[ANSWER_COUNTER] = lambda request, status: seen.append(status)

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        raise web.HTTPRequestEntityTooLarge(max_size=1, actual_size=2)

    response = await answered_in_json(handle)(make_mocked_request("POST", "/v1/events", app=app))
    assert response.status == 413 and response.content_type == "application/json"
    assert seen == [413]


async def test_a_refusal_of_an_unknown_expectation_is_counted_once() -> None:
    seen: list[int] = []
    app = web.Application()
    app[ANSWER_COUNTER] = lambda request, status: seen.append(status)

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        raise web.HTTPExpectationFailed()

    request = make_mocked_request("POST", "/nowhere", headers={"Expect": "x"}, app=app)
    assert (await answered_in_json(handle)(request)).status == 417
    assert seen == [417]
