"""A header the API acts on, sent twice, is a 400 naming it: a proxy in front of the API
may honour another of the values than the first, which the API would have read."""

from __future__ import annotations

import asyncio
import gzip

import pytest
from aiohttp.test_utils import TestServer

from tests.unit.api_app import SHOP, api_app, raw_request

OFFERS = b"GET /v1/offers HTTP/1.1\r\nHost: api\r\n"
BODY = gzip.compress(b'{"type": "web_click"}')


def events(*headers: bytes) -> bytes:
    return (
        b"POST /v1/events HTTP/1.1\r\nHost: api\r\n"
        + b"".join(h + b"\r\n" for h in headers)
        + f"Content-Length: {len(BODY)}\r\n\r\n".encode()
        + BODY
    )


@pytest.mark.parametrize(
    ("request_bytes", "header"),
    [
        (OFFERS + b"X-API-Key: wrong-key\r\nX-API-Key: backend-key", "X-API-Key"),
        (OFFERS + b"Authorization: Bearer x\r\nAuthorization: Bearer backend-key", "Authorization"),
        (
            OFFERS + b"Authorization: Bearer backend-key\r\nX-API-Key: a\r\nX-API-Key: b",
            "X-API-Key",
        ),
        (
            OFFERS + b"X-API-Key: page-key\r\nOrigin: https://other.example\r\nOrigin: "
            + SHOP.encode(),
            "Origin",
        ),
        (
            OFFERS + b"X-API-Key: page-key\r\nReferer: https://other.example/\r\nReferer: "
            + SHOP.encode() + b"/basket",
            "Referer",
        ),
        (
            b"GET /v1/alerts/stream HTTP/1.1\r\nHost: api\r\nX-API-Key: backend-key\r\n"
            b"Last-Event-ID: 0-1\r\nLast-Event-ID: 0-2",
            "Last-Event-ID",
        ),
        (
            events(b"X-API-Key: backend-key", b"Content-Type: application/json",
                   b"Content-Encoding: gzip", b"Content-Encoding: gzip"),
            "Content-Encoding",
        ),
    ],
    ids=["key", "bearer", "key-beside-bearer", "origin", "referer", "last-event-id", "encoding"],
)  # fmt: skip
async def test_a_header_the_api_reads_sent_twice_is_refused_naming_it(
    request_bytes: bytes, header: str
) -> None:
    async with TestServer(api_app()) as server:
        reply = await raw_request(server, request_bytes)
    assert reply.status == 400, reply
    assert reply.json == {
        "error": "duplicate_header",
        "message": f"the {header} header must come once, not 2 times",
        "details": [{"header": header}],
    }


async def test_headers_the_api_does_not_read_may_come_twice() -> None:
    async with TestServer(api_app()) as server:
        reply = await raw_request(
            server, OFFERS + b"X-API-Key: wrong-key\r\nAccept: a/b\r\nAccept: c/d"
        )
    assert reply.status == 401  # as without the repeated header


async def test_a_key_sent_twice_asking_for_100_continue_is_refused_before_the_body() -> None:
    asking = events(b"X-API-Key: backend-key", b"X-API-Key: other",
                    b"Content-Type: application/json", b"Expect: 100-continue")  # fmt: skip
    async with TestServer(api_app()) as server:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        try:
            writer.write(asking.partition(b"\r\n\r\n")[0] + b"\r\n\r\n")  # no body
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        finally:
            writer.close()
    assert head.startswith(b"HTTP/1.1 400 ") and b"Connection: close" in head, head
