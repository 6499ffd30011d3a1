"""A body that cannot be read (its compression is corrupt) is a 400, not a 500."""

from __future__ import annotations

import gzip

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
