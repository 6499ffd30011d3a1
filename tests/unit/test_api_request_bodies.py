"""A body that cannot be read (its compression is corrupt) is a 400, not a 500."""

from __future__ import annotations

import asyncio
import gzip
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from tests.unit.api_app import api_app, raw_request


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


class _Publisher:
    """Takes the records the views would write to Kafka."""

    def publish(self, topic: str, records: Any, linger: bool = True) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


_OUTCOMES = SimpleNamespace(labels=lambda *a: SimpleNamespace(inc=lambda: None))
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
    app = api_app(publisher=_Publisher(), metrics=SimpleNamespace(outcomes=_OUTCOMES))
    async with TestServer(app) as server:
        for depth in range(800, 1100, 2):
            body = (_ITEM[path] % ("[" * depth + "]" * depth)).encode()
            reply = await raw_request(server, post(path, body))
            statuses.add(reply.status)
            assert reply.status < 500, (depth, reply.json)
    assert 202 in statuses and statuses - {202} <= {400, 422}
