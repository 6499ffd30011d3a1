"""Header values that are not UTF-8, or not URLs, get a JSON 4xx that shows them escaped."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestServer

from streams.api.auth import AuthError, KeyRing, hash_key, origin_of
from tests.unit.api_app import SHOP, api_app, raw_request

OFFERS = b"GET /v1/offers HTTP/1.1\r\nHost: api\r\n"


@pytest.mark.parametrize(
    "header",
    [b"X-API-Key: \xff\xfe", b"Authorization: Bearer \xff\xfe", b"X-API-Key: k\xc3"],
)
async def test_a_key_that_is_not_utf8_is_not_valid(header: bytes) -> None:
    async with TestServer(api_app()) as server:
        reply = await raw_request(server, OFFERS + header)
    assert reply.status == 401
    assert reply.json == {"error": "unauthorized", "message": "the API key is not valid"}


@pytest.mark.parametrize(
    "header",
    [b"Origin: https://\xff\xfe.example", b"Referer: https://\xff.example/basket?x=\x80"],
)
async def test_a_bound_key_from_an_origin_that_is_not_utf8_is_refused_with_it_escaped(
    header: bytes,
) -> None:
    async with TestServer(api_app()) as server:
        reply = await raw_request(server, OFFERS + b"X-API-Key: page-key\r\n" + header)
    assert reply.status == 403
    assert reply.json["error"] == "forbidden"
    assert "https://\\udcff" in reply.json["message"]  # escaped, not the raw bytes


@pytest.mark.parametrize("referer", [b"http://[::1/x", b"https://[shop.example/", b"http://]/"])
async def test_a_bound_key_with_a_referer_that_is_not_a_url_names_no_origin(
    referer: bytes,
) -> None:
    async with TestServer(api_app()) as server:
        reply = await raw_request(server, OFFERS + b"X-API-Key: page-key\r\nReferer: " + referer)
    assert reply.status == 403
    assert "no Origin or Referer" in reply.json["message"]


async def test_a_preflight_for_a_method_that_is_not_utf8_is_refused_as_json() -> None:
    preflight = (
        b"OPTIONS /v1/offers HTTP/1.1\r\nHost: api\r\nOrigin: " + SHOP.encode() + b"\r\n"
        b"Access-Control-Request-Method: G\xffT"
    )
    async with TestServer(api_app()) as server:
        reply = await raw_request(server, preflight)
    assert reply.status == 405
    assert reply.json == {
        "error": "method_not_allowed",
        "message": "G\\udcffT is not allowed; only GET",
    }


def test_keys_and_origins_as_aiohttp_decodes_them() -> None:
    """aiohttp decodes header bytes that are not UTF-8 to lone surrogates."""
    ring = KeyRing.parse(f"pages:recommend:{hash_key('k')}@{SHOP}")
    assert hash_key("\udcff") == hash_key(b"\xff".decode("utf-8", "surrogateescape"))
    with pytest.raises(AuthError) as caught:
        ring.authorise("k", "recommend", "https://\udcff\n.example")
    assert caught.value.message.endswith("than https://\\udcff\\n.example")
    caught.value.message.encode()  # can be answered
    assert origin_of("http://[::1/x") is None
