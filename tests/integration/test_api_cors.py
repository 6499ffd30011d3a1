"""Browsers on the configured origins may call the API (MOMENTS_API_CORS_ORIGINS); other
origins get no CORS headers, and without the setting nothing changes."""

from __future__ import annotations

import aiohttp
import pytest

from streams.api.auth import hash_key
from tests.integration.conftest import Pipeline
from tests.integration.test_api_support import DEV_AUTH, assert_error, call, outcome

pytestmark = pytest.mark.integration

SHOP = "https://shop.example"
OTHER = "https://elsewhere.example"
ALLOW = "Access-Control-Allow-Origin"


def preflight(origin: str, method: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type",
    }


async def test_allowed_origins_get_cors_headers_on_answers_errors_and_the_alert_stream(
    pipeline: Pipeline,
) -> None:
    api = pipeline.start_api(MOMENTS_API_CORS_ORIGINS=f"{SHOP}, http://localhost:3000")
    recs = f"{api.url}/v1/customers/cors-1/recommendations?channel=web"

    # the browser's preflight before a GET with an Authorization header
    reply = await call("OPTIONS", recs, headers=preflight(SHOP, "GET"), content_type=None)
    assert reply.status == 204, reply
    assert reply.headers[ALLOW] == SHOP
    assert reply.headers["Access-Control-Allow-Methods"] == "GET, OPTIONS"
    assert "Authorization" in reply.headers["Access-Control-Allow-Headers"]
    assert int(reply.headers["Access-Control-Max-Age"]) > 0
    # preflights for posting outcomes, and for a method the path does not take
    posting = await call(
        "OPTIONS", f"{api.url}/v1/outcomes", headers=preflight(SHOP, "POST"), content_type=None
    )
    assert posting.status == 204 and "POST" in posting.headers["Access-Control-Allow-Methods"]
    wrong = await call("OPTIONS", recs, headers=preflight(SHOP, "DELETE"), content_type=None)
    assert_error(wrong, 405, "method_not_allowed")
    assert wrong.headers[ALLOW] == SHOP  # so the page can read why
    unknown = await call(
        "OPTIONS", f"{api.url}/v1/nothing", headers=preflight(SHOP, "GET"), content_type=None
    )
    assert_error(unknown, 404)
    refused = await call("OPTIONS", recs, headers=preflight(OTHER, "GET"), content_type=None)
    assert_error(refused, 403, "origin_not_allowed")
    assert ALLOW not in refused.headers

    # the requests themselves: answers and errors alike carry the headers
    answered = await call("GET", recs, headers={**DEV_AUTH, "Origin": SHOP})
    assert answered.status == 200 and answered.headers[ALLOW] == SHOP, answered
    assert answered.headers["Vary"] == "Origin"
    assert "Retry-After" in answered.headers["Access-Control-Expose-Headers"]
    unauthorised = await call("GET", recs, headers={"Origin": "http://localhost:3000"})
    assert_error(unauthorised, 401)
    assert unauthorised.headers[ALLOW] == "http://localhost:3000"
    posted = await call(
        "POST", f"{api.url}/v1/outcomes", headers={**DEV_AUTH, "Origin": SHOP},
        body=outcome(answered.json["decision_id"], "cors-1", "book-club", "shown"),
    )  # fmt: skip
    assert posted.status == 202 and posted.headers[ALLOW] == SHOP, posted
    elsewhere = await call("GET", recs, headers={**DEV_AUTH, "Origin": OTHER})
    assert elsewhere.status == 200 and ALLOW not in elsewhere.headers
    # the alert stream's headers go out before its first event
    timeout = aiohttp.ClientTimeout(total=10)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(f"{api.url}/v1/alerts/stream", headers={**DEV_AUTH, "Origin": SHOP}) as stream,
    ):
        assert stream.status == 200 and stream.headers[ALLOW] == SHOP
        assert stream.headers["Content-Type"].startswith("text/event-stream")


async def test_without_allowed_origins_there_is_no_cors(pipeline: Pipeline) -> None:
    api = pipeline.start_api()
    recs = f"{api.url}/v1/customers/cors-2/recommendations"
    reply = await call("OPTIONS", recs, headers=preflight(SHOP, "GET"), content_type=None)
    assert_error(reply, 405)
    assert ALLOW not in reply.headers
    answered = await call("GET", recs, headers={**DEV_AUTH, "Origin": SHOP})
    assert answered.status == 200 and ALLOW not in answered.headers


def test_a_malformed_origin_is_refused_at_start(pipeline: Pipeline) -> None:
    with pytest.raises(RuntimeError, match="MOMENTS_API_CORS_ORIGINS"):
        pipeline.start_api(timeout=30, MOMENTS_API_CORS_ORIGINS="shop.example/path")


async def test_a_key_bound_to_the_shops_origin_answers_only_its_pages(pipeline: Pipeline) -> None:
    page_key, backend_key = "shop-page-key", "backend-key"
    keys = (
        f"pages:recommend:{hash_key(page_key)}@{SHOP};"
        f"backend:recommend+profile-read:{hash_key(backend_key)}"
    )
    api = pipeline.start_api(MOMENTS_API_CORS_ORIGINS=SHOP, MOMENTS_API_KEYS=keys)
    recs = f"{api.url}/v1/customers/bound-1/recommendations?channel=web"
    page = {"Authorization": f"Bearer {page_key}"}

    from_the_shop = await call("GET", recs, headers={**page, "Origin": SHOP})
    assert from_the_shop.status == 200 and from_the_shop.headers[ALLOW] == SHOP, from_the_shop
    elsewhere = assert_error(await call("GET", recs, headers={**page, "Origin": OTHER}), 403)
    assert "bound to other origins" in elsewhere["message"], elsewhere
    no_origin = assert_error(await call("GET", recs, headers=page), 403, "forbidden")
    assert "no Origin or Referer" in no_origin["message"], no_origin
    # a page on the API's own origin sends no Origin on a GET, but its Referer
    same_site = await call("GET", recs, headers={**page, "Referer": f"{SHOP}/basket"})
    assert same_site.status == 200, same_site
    # a key that is not bound goes on answering servers, with or without an Origin
    backend = {"Authorization": f"Bearer {backend_key}"}
    assert (await call("GET", recs, headers=backend)).status == 200
    assert (await call("GET", recs, headers={**backend, "Origin": OTHER})).status == 200
