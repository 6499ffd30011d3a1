"""A request aiohttp cannot parse is logged without its content: the path and the body
may hold a customer id."""

from __future__ import annotations

import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from streams import logs
from tests.unit.api_app import api_app, raw_request

CUSTOMER = "john smith"


@pytest.mark.parametrize(
    "request_bytes",
    [
        f"GET /v1/customers/{CUSTOMER}/export HTTP/1.1\r\nHost: api".encode(),
        "GET /v1/customers/jöhn-smith/export HTTP/1.1\r\nHost: api".encode(),
        b"GET /v1/customers/x HTTP/1.1\r\nHost: api\r\nX-Note: john\x01smith",
        b"POST /v1/events HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
        b'Transfer-Encoding: chunked\r\n\r\n11\r\n{"customer_id": "john smith"}xx\r\n0\r\n',
    ],
)
async def test_the_servers_log_names_the_error_not_the_request(
    request_bytes: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    logs.configure("debug")
    caplog.set_level(logging.DEBUG, logger=logs.SERVER_LOGGER)
    async with TestServer(api_app()) as server:
        reply = await raw_request(server, request_bytes)
    assert reply.status == 400
    said = [r for r in caplog.records if r.name == logs.SERVER_LOGGER]
    assert said, "the server logged nothing"
    assert all(r.getMessage().startswith("could not read a request (") for r in said)
    assert "john" not in caplog.text and "j\\xc3\\xb6hn" not in caplog.text


async def test_a_body_that_cannot_be_decompressed_is_logged_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logs.configure("info")
    body = b"not gzip at all"
    request_bytes = (
        b"POST /v1/events HTTP/1.1\r\nHost: api\r\nX-API-Key: backend-key\r\n"
        b"Content-Type: application/json\r\nContent-Encoding: gzip\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    async with TestServer(api_app()) as server:
        assert (await raw_request(server, request_bytes)).status == 400
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize("line_format", ["text", "json"])
async def test_a_handlers_error_is_logged_with_its_frames_not_its_message(
    line_format: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A handler's error that nothing answered (Faust's ``/router/<name>/`` raised
    ``KeyError: '<name>'``) is logged with where it was raised, not with what it says."""
    logs.configure("info", line_format)
    marker = "PII-MARKER-7781-" + "filter"

    async def table(request: web.Request) -> web.Response:
        try:
            return web.json_response({}[request.match_info["name"]])
        except KeyError as exc:
            raise LookupError(f"no table {request.match_info['name']}") from exc

    app = web.Application()
    app.router.add_get("/router/{name}/", table)
    formatter = logs.JsonLines() if line_format == "json" else logging.Formatter(logs.TEXT_FORMAT)
    async with TestClient(TestServer(app)) as client:
        assert (await client.get(f"/router/{marker}/")).status == 500
    said = [r for r in caplog.records if r.name == logs.SERVER_LOGGER]
    assert said, "the server logged nothing"
    lines = "\n".join(formatter.format(r) for r in said)
    assert marker not in lines, lines
    assert "Error handling request from 127.0.0.1" in lines
    assert "in table" in lines and "KeyError" in lines and "LookupError" in lines, lines
    assert all(r.levelno == logging.ERROR for r in said)
