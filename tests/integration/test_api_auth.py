"""API keys with scopes, both ways of presenting them, and the per-key rate limit.

``MOMENTS_API_KEYS`` holds only SHA-256 hashes; each test key has one scope, so every
endpoint is tried with no key, a wrong key, each key lacking its scope, and its own.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from schemas import decode_touchpoint
from streams.api.auth import hash_key
from streams.api.server import WRONG_KEYS_BURST, WRONG_KEYS_PER_S, create_api
from streams.settings import Settings
from tests.integration.conftest import Pipeline
from tests.integration.test_api_support import (
    DEV_KEY,
    Reply,
    assert_error,
    call,
    event,
    outcome,
)

pytestmark = pytest.mark.integration

# what each scope's key may call, written out (not taken from the code's own table, so
# that a scope granting more than it should fails here): ingest takes outcomes too
GRANTS = {
    "recommend": {"recommend"},
    "ingest": {"ingest", "outcomes"},
    "outcomes": {"outcomes"},
    "profile-read": {"profile-read"},
    "erase": {"erase"},
    "export": {"export"},
}

KEYS = {  # scope -> secret
    "recommend": "web-shop-secret",
    "outcomes": "page-outcomes-secret",
    "ingest": "ingest-secret",
    "profile-read": "screen-secret",
    "erase": "privacy-desk-secret",
    "export": "access-request-secret",
}
ALL_SCOPES = "recommend+outcomes+ingest+profile-read+erase+export"
assert set(GRANTS) == set(KEYS) == set(ALL_SCOPES.split("+"))
ADMIN = "admin-secret"


def keys_setting(**extra: str) -> str:
    entries = [f"{scope.replace('-', '')}:{scope}:{hash_key(key)}" for scope, key in KEYS.items()]
    entries.append(f"admin:{ALL_SCOPES}:{hash_key(ADMIN)}")
    entries += [f"{name}:recommend:{hash_key(key)}" for name, key in extra.items()]
    return ";".join(entries)


@dataclass
class Endpoint:
    method: str
    path: str
    scope: str
    body: Any = None


def endpoints(customer: str) -> list[Endpoint]:
    return [
        Endpoint(
            "GET", f"/v1/customers/{customer}/recommendations?channel=web&limit=2", "recommend"
        ),
        Endpoint("POST", "/v1/events", "ingest", event("web_click", customer, "auth-e1")),
        Endpoint("POST", "/v1/outcomes", "outcomes", [outcome("d-1", customer, "free-shipping")]),
        Endpoint("GET", f"/v1/customers/{customer}", "profile-read"),
        Endpoint("GET", "/v1/alerts/stream", "profile-read"),
        Endpoint("DELETE", f"/v1/customers/{customer}-gone", "erase"),
        Endpoint("GET", f"/v1/customers/{customer}/export", "export"),
        Endpoint("GET", "/v1/offers?channel=web", "recommend"),
    ]


async def route_of(app: web.Application, endpoint: Endpoint) -> tuple[str, str]:
    """The route of the API's router that serves ``endpoint``."""
    match = await app.router.resolve(make_mocked_request(endpoint.method, endpoint.path, app=app))
    assert match.http_exception is None, (endpoint, match.http_exception)
    return endpoint.method, match.route.resource.canonical  # type: ignore[union-attr]


async def test_every_v1_route_of_the_api_is_tried_with_its_scope() -> None:
    """A route added under /v1 is not left out of the checks below by mistake."""
    app = create_api(Settings.from_env({}))
    served = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.resource.canonical.startswith("/v1/")
    }
    tried = [await route_of(app, endpoint) for endpoint in endpoints("auth-cust-1")]
    assert len(tried) == len(set(tried)), tried  # one entry per route
    assert served - set(tried) == set(), "routes under /v1 with no entry in endpoints()"
    assert set(tried) <= served


async def request(url: str, endpoint: Endpoint, headers: dict[str, str]) -> Reply:
    if endpoint.path.startswith("/v1/alerts/stream"):  # an endless stream: status only
        async with (
            aiohttp.ClientSession() as session,
            session.get(url + endpoint.path, headers=headers) as resp,
        ):
            if resp.status == 200:
                return Reply(200, dict(resp.headers), b"")
            return Reply(resp.status, dict(resp.headers), await resp.read())
    return await call(endpoint.method, url + endpoint.path, headers=headers, body=endpoint.body)


async def test_every_endpoint_needs_a_key_with_its_scope(pipeline: Pipeline) -> None:
    api = pipeline.start_api(MOMENTS_API_KEYS=keys_setting())
    customer = "auth-cust-1"
    store = pipeline.store()  # a profile to read
    try:
        seeded = await store.apply(
            [decode_touchpoint(json.dumps(event("web_click", customer, "s")))]
        )
        assert len(seeded) == 1
    finally:
        await store.close()

    for endpoint in endpoints(customer):
        what = f"{endpoint.method} {endpoint.path}"
        no_key = await request(api.url, endpoint, {})
        assert_error(no_key, 401, "unauthorized")
        for wrong in ({"Authorization": "Bearer nope"}, {"X-API-Key": "nope"}):
            assert_error(await request(api.url, endpoint, wrong), 401, "unauthorized")
        # The development key is refused once keys are configured.
        dev = await request(api.url, endpoint, {"Authorization": f"Bearer {DEV_KEY}"})
        assert_error(dev, 401, "unauthorized")
        for scope, key in KEYS.items():
            for headers in ({"Authorization": f"Bearer {key}"}, {"X-API-Key": key}):
                reply = await request(api.url, endpoint, headers)
                if endpoint.scope in GRANTS[scope]:
                    assert 200 <= reply.status < 300, (what, scope, headers, reply)
                else:
                    body = assert_error(reply, 403, "forbidden")
                    assert endpoint.scope in body["message"], (what, body)
        admin = await request(api.url, endpoint, {"Authorization": f"bearer {ADMIN}"})
        assert 200 <= admin.status < 300, (what, admin)
        # A key in the query string counts on the alert stream only (for EventSource).
        sep = "&" if "?" in endpoint.path else "?"
        in_query = Endpoint(endpoint.method, f"{endpoint.path}{sep}api_key={ADMIN}",
                            endpoint.scope, endpoint.body)  # fmt: skip
        reply = await request(api.url, in_query, {})
        if endpoint.path == "/v1/alerts/stream":
            assert reply.status == 200, (what, reply)
        else:
            assert_error(reply, 401, "unauthorized")


async def test_the_rate_limit_is_per_key_and_says_when_to_retry(pipeline: Pipeline) -> None:
    api = pipeline.start_api(
        MOMENTS_API_KEYS=keys_setting(other="other-secret"),
        MOMENTS_API_RATE_PER_S="1",
        MOMENTS_API_BURST="2",
    )
    url = f"{api.url}/v1/customers/rl-1/recommendations"
    mine = {"Authorization": f"Bearer {KEYS['recommend']}"}
    replies = [await call("GET", url, headers=mine) for _ in range(3)]
    assert [r.status for r in replies[:2]] == [200, 200], replies
    limited = replies[2]
    assert_error(limited, 429, "rate_limited")
    retry_after = limited.headers.get("Retry-After")
    assert retry_after is not None and retry_after.isdigit() and int(retry_after) >= 1, limited

    # Another key has its own bucket, whichever way it is presented.
    other = await call("GET", url, headers={"X-API-Key": "other-secret"})
    assert other.status == 200, other
    # The limited key is still limited, and served again once it waited as told.
    assert_error(await call("GET", url, headers=mine), 429, "rate_limited")
    await asyncio.sleep(int(retry_after) + 0.2)
    assert (await call("GET", url, headers=mine)).status == 200


async def test_a_large_body_takes_from_its_keys_rate_as_the_requests_it_costs(
    pipeline: Pipeline,
) -> None:
    """Splitting a list costs the API per item: a 1 MiB list of empty items, refused as
    too many, took 90 ms of its event loop for one token, so a key web pages show could
    slow every other key's answers to seconds. Such a body takes one token per 100
    items, into debt as deep as the costliest body costs (once, one burst below empty
    at most: a body cost less than it split); other keys are not held back."""
    api = pipeline.start_api(
        MOMENTS_API_KEYS=keys_setting(), MOMENTS_API_RATE_PER_S="1", MOMENTS_API_BURST="10"
    )
    ingest = {"Authorization": f"Bearer {KEYS['ingest']}"}
    flood = b"[" + b",".join([b"{}"] * 5_000) + b"]"
    refused = await call("POST", f"{api.url}/v1/outcomes", data=flood,
                         headers={**ingest, "Content-Type": "application/json"})  # fmt: skip
    assert_error(refused, 413, "too_many_items")
    after = await call(
        "POST",
        f"{api.url}/v1/events",
        body=[event("web_click", "cost-1", "cost-e1")],
        headers=ingest,
    )
    assert_error(after, 429, "rate_limited")
    # charged in full: 10 - 1 - 49 = 40 tokens below empty (the burst, 10, was the most
    # before), at 1 a second: some 41 s before a token is there again
    assert int(after.headers["Retry-After"]) >= 39, after
    others = {"Authorization": f"Bearer {KEYS['recommend']}"}
    url = f"{api.url}/v1/customers/cost-1/recommendations"
    assert (await call("GET", url, headers=others)).status == 200


async def test_keys_that_are_not_valid_are_refused_at_a_limited_rate(pipeline: Pipeline) -> None:
    api = pipeline.start_api(MOMENTS_API_KEYS=keys_setting())
    url = f"{api.url}/v1/customers/guessed-1/recommendations"
    guesses = WRONG_KEYS_BURST + 60
    started = time.monotonic()
    replies = await asyncio.gather(
        *(call("GET", url, headers={"X-API-Key": f"guess-{n}"}) for n in range(guesses))
    )
    elapsed = time.monotonic() - started
    refused = [r for r in replies if r.status == 401]
    limited = [r for r in replies if r.status == 429]
    assert len(refused) + len(limited) == guesses, Counter(r.status for r in replies)
    # the burst, and what refilled while they came, is told the key is not valid
    assert WRONG_KEYS_BURST <= len(refused) <= WRONG_KEYS_BURST + elapsed * WRONG_KEYS_PER_S + 1
    assert limited, f"{guesses} guesses in {elapsed:.1f}s were all answered 401"
    body = assert_error(limited[0], 429, "rate_limited")
    assert "not valid" in body["message"], body
    assert int(limited[0].headers["Retry-After"]) >= 1, limited[0]
    # Valid keys are not held back by the guessing, and a request with no key still
    # hears that it needs one.
    mine = {"Authorization": f"Bearer {KEYS['recommend']}"}
    assert (await call("GET", url, headers=mine)).status == 200
    assert_error(await call("GET", url), 401, "unauthorized")

    async def guessed_again(method: str, path: str, **kw: Any) -> Reply:
        """A guess once the tokens that refilled meanwhile are spent. Tokens come back at
        10 a second, so on a busy machine one can be there again between the spending and
        the guess (answered 401): the guess is tried again then, a few times at most."""
        for _ in range(5):
            await asyncio.gather(*(call("GET", url, headers={"X-API-Key": f"more-{n}"})
                                   for n in range(40)))  # fmt: skip
            reply = await call(method, f"{api.url}{path}", **kw)
            if reply.status != 401:
                return reply
        return reply

    path = url.removeprefix(api.url)
    again = await guessed_again("GET", path, headers={"X-API-Key": "guess-again"})
    assert_error(again, 429, "rate_limited")
    # A body is not invited from a guessed key either.
    expecting = {"X-API-Key": "guess-body", "Expect": "100-continue"}
    posted = await guessed_again("POST", "/v1/events", body=[], headers=expecting)
    assert_error(posted, 429, "rate_limited")


async def test_only_keys_that_read_profiles_hear_why_a_customer_got_their_offers(
    pipeline: Pipeline,
) -> None:
    """A key web pages use is visible to their visitors: the decision's segment, model
    input and reasons (a consent withdrawn, quiet hours) would tell anyone who names a
    customer what a profile-read key is needed for. Whether they are held out (drawn by a
    hash of the id) is a field of every decision, told to every key; so is ``reasons``, a
    list a client may read: empty for the page's key."""
    api = pipeline.start_api(MOMENTS_API_KEYS=keys_setting())
    url = f"{api.url}/v1/customers/why-1/recommendations?channel=web"
    page = await call("GET", url, headers={"X-API-Key": KEYS["recommend"]})
    assert page.status == 200, page
    assert {"decision_id", "offers", "fallback", "control"} <= set(page.json)
    assert not {"segment", "context"} & set(page.json), page.json
    assert page.json["reasons"] == [], page.json
    admin = await call("GET", url, headers={"X-API-Key": ADMIN})
    assert {"segment", "control", "context", "reasons"} <= set(admin.json), admin.json
    assert admin.json["reasons"], admin.json  # the segment's at least
