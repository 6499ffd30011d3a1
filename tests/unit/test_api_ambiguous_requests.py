"""A query parameter the API acts on, sent twice, and two different keys in one request,
are 400s naming what was ambiguous: the API took the first value (and the bearer token
over ``X-API-Key``), while a proxy or gateway in front may check another."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestServer

from tests.unit.api_app import api_app, raw_request

_STREAM = "/v1/alerts/stream?api_key=backend-key"


@pytest.mark.parametrize(
    ("target", "parameter"),
    [
        ("/v1/customers/c1/recommendations?channel=web&channel=email", "channel"),
        ("/v1/customers/c1/recommendations?limit=1&limit=9", "limit"),
        ("/v1/offers?channel=web&channel=email", "channel"),
        ("/v1/alerts/stream?api_key=x&api_key=backend-key", "api_key"),
        (f"{_STREAM}&queue=a&queue=b", "queue"),
        (f"{_STREAM}&last_event_id=1-0&last_event_id=2-0", "last_event_id"),
        (f"{_STREAM}&erasures=ref&erasures=ref", "erasures"),
        (f"{_STREAM}&alert_event=intervention&alert_event=", "alert_event"),
    ],
)
async def test_a_parameter_sent_twice_is_refused_naming_it(target: str, parameter: str) -> None:
    key = b"" if "api_key=" in target else b"\r\nX-API-Key: backend-key"
    request = f"GET {target} HTTP/1.1\r\nHost: api".encode() + key
    async with TestServer(api_app()) as server:
        reply = await raw_request(server, request)
    assert reply.status == 400, reply
    assert reply.json["error"] == "duplicate_parameter", reply
    assert reply.json["details"] == [{"parameter": parameter}]


@pytest.mark.parametrize(
    ("target", "headers"),
    [
        ("/v1/offers", b"Authorization: Bearer page-key\r\nX-API-Key: backend-key"),
        ("/v1/offers", b"Authorization: Bearer backend-key\r\nX-API-Key: page-key"),
        ("/v1/alerts/stream?api_key=page-key", b"Authorization: Bearer backend-key"),
        ("/v1/alerts/stream?api_key=page-key", b"X-API-Key: backend-key"),
    ],
    ids=["bearer-and-x-api-key", "the-other-way", "bearer-and-query", "x-api-key-and-query"],
)
async def test_two_different_keys_are_refused(target: str, headers: bytes) -> None:
    request = f"GET {target} HTTP/1.1\r\nHost: api\r\n".encode() + headers
    async with TestServer(api_app()) as server:
        reply = await raw_request(server, request)
    assert reply.status == 400 and reply.json["error"] == "conflicting_credentials", reply
    assert b"page-key" not in reply.body and b"backend-key" not in reply.body


async def test_the_same_key_twice_is_taken() -> None:
    head = b"GET /v1/offers HTTP/1.1\r\nHost: api\r\n"
    async with TestServer(api_app()) as server:
        same = await raw_request(server, head + b"Authorization: Bearer backend-key\r\n"
                                 b"X-API-Key: backend-key")  # fmt: skip
        one = await raw_request(server, head + b"X-API-Key: backend-key")
    assert (same.status, same.body) == (one.status, one.body)
    assert same.status != 400, same
