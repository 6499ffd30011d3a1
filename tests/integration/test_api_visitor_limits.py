"""A page key's rate limit is per visitor: anyone who reads the key from a shop's page
source and spends it from one machine is limited alone, and the shop's other visitors
go on being answered. Keys not bound to origins keep one bucket per key.

The API listens on loopback, so every request here comes from 127.0.0.1: trusted as a
proxy (``MOMENTS_API_TRUSTED_PROXIES``), it tells each visitor apart by the address its
``X-Forwarded-For`` ends with, as a load balancer in front of the API would."""

from __future__ import annotations

import pytest

from streams.api.auth import hash_key
from tests.integration.conftest import Pipeline
from tests.integration.test_api_support import assert_error, call

pytestmark = pytest.mark.integration

SHOP = "https://shop.example"
PAGE_KEY, BACKEND_KEY = "shop-page-key", "backend-key"
KEYS = (
    f"pages:recommend=web+outcomes:{hash_key(PAGE_KEY)}@{SHOP};"
    f"backend:recommend+outcomes:{hash_key(BACKEND_KEY)}"
)
LIMITS = {  # one visitor and one key alike: 3 at once, then 1 a second
    "MOMENTS_API_RATE_PER_S": "1",
    "MOMENTS_API_BURST": "3",
    "MOMENTS_API_VISITOR_RATE_PER_S": "1",
    "MOMENTS_API_VISITOR_BURST": "3",
}
PAGE = {"Authorization": f"Bearer {PAGE_KEY}", "Origin": SHOP}
SCRAPER, SHOPPER = "203.0.113.7", "198.51.100.9"  # documentation addresses


def via_proxy(visitor: str, **headers: str) -> dict[str, str]:
    """Headers of a request that came through the loopback proxy from ``visitor``
    (which sent a made-up ``X-Forwarded-For`` of its own, as anyone may)."""
    return {**PAGE, **headers, "X-Forwarded-For": f"10.9.8.7, {visitor}"}


async def test_one_visitor_spending_a_page_key_leaves_the_others_served(
    pipeline: Pipeline,
) -> None:
    api = pipeline.start_api(
        MOMENTS_API_KEYS=KEYS,
        MOMENTS_API_CORS_ORIGINS=SHOP,
        MOMENTS_API_TRUSTED_PROXIES="127.0.0.1, ::1",
        **LIMITS,
    )
    recs = f"{api.url}/v1/customers/visitor-1/recommendations?channel=web"
    spent = [await call("GET", recs, headers=via_proxy(SCRAPER)) for _ in range(4)]
    assert [r.status for r in spent[:3]] == [200, 200, 200], spent
    assert_error(spent[3], 429, "rate_limited")  # one visitor alone is still limited
    # another visitor of the shop, with the same key, is answered
    shopper = await call("GET", recs, headers=via_proxy(SHOPPER))
    assert shopper.status == 200, shopper

    # A costly body (5,000 items, refused as too many, charged 49 tokens) puts its own
    # visitor in debt, not the key: the shopper goes on posting outcomes.
    flood = b"[" + b",".join([b"{}"] * 5_000) + b"]"
    indebted = "192.0.2.44"
    refused = await call("POST", f"{api.url}/v1/outcomes", data=flood, headers=via_proxy(indebted))
    assert_error(refused, 413, "too_many_items")
    after = await call("GET", recs, headers=via_proxy(indebted))
    assert_error(after, 429, "rate_limited")
    assert int(after.headers["Retry-After"]) >= 40, after
    posted = await call("POST", f"{api.url}/v1/outcomes", body=[], headers=via_proxy(SHOPPER))
    assert_error(posted, 400, "empty")  # read and judged: not refused for the key's debt

    # A key not bound to origins keeps one bucket, whatever X-Forwarded-For says.
    backend = {"Authorization": f"Bearer {BACKEND_KEY}"}
    answered = [
        await call("GET", recs, headers={**backend, "X-Forwarded-For": f"192.0.2.{n}"})
        for n in range(4)
    ]
    assert [r.status for r in answered[:3]] == [200, 200, 200], answered
    assert_error(answered[3], 429, "rate_limited")


async def test_without_trusted_proxies_x_forwarded_for_is_not_believed(
    pipeline: Pipeline,
) -> None:
    """The peer is the visitor unless it is a trusted proxy: a client that writes its own
    ``X-Forwarded-For`` is not a new visitor with each one."""
    api = pipeline.start_api(MOMENTS_API_KEYS=KEYS, MOMENTS_API_CORS_ORIGINS=SHOP, **LIMITS)
    recs = f"{api.url}/v1/customers/visitor-2/recommendations?channel=web"
    replies = [
        await call("GET", recs, headers={**PAGE, "X-Forwarded-For": f"192.0.2.{n}"})
        for n in range(4)
    ]
    assert [r.status for r in replies[:3]] == [200, 200, 200], replies
    assert_error(replies[3], 429, "rate_limited")
