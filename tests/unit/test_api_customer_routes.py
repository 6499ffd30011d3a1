"""Every customer route takes any id POST /v1/events takes, braces included."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request

from agents.risk_watch import RiskHolder
from schemas import ContactRules, Offer, OfferCatalogue
from tests.unit.api_app import api_app

GUID = "{3F2504E0-4F89-11D3-9A0C-0305E82C3301}"
ROUTES = [
    ("GET", "/v1/customers/{}/recommendations"),
    ("GET", "/v1/customers/{}"),
    ("GET", "/v1/customers/{}/export"),
    ("DELETE", "/v1/customers/{}"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("customer_id", [GUID, "a{b}c", "{", "}"])
async def test_a_customer_id_with_braces_reaches_its_view(
    method: str, path: str, customer_id: str
) -> None:
    app = api_app()
    request = make_mocked_request(method, path.format(customer_id), app=app)
    match = await app.router.resolve(request)
    assert match.http_exception is None
    assert match["customer_id"] == customer_id


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_a_braced_customer_is_asked_for_a_key_not_told_of_no_such_path(
    method: str, path: str
) -> None:
    async with TestClient(TestServer(api_app())) as client:
        for written in (GUID, GUID.replace("{", "%7B").replace("}", "%7D")):
            reply = await client.request(method, path.format(written))
            assert reply.status == 401, await reply.text()
            assert (await reply.json())["error"] == "unauthorized"
            # the scheme that takes a key, as RFC 9110 asks of every 401
            assert reply.headers["WWW-Authenticate"] == 'Bearer realm="moments"'
            assert reply.headers["Cache-Control"] == "no-store"  # about a customer


async def test_answers_about_a_customer_are_kept_by_no_cache_and_others_may_be() -> None:
    async with TestClient(TestServer(api_app())) as client:
        about = await client.get("/v1/customers/c-1/recommendations?channel=fax",
                                 headers={"X-API-Key": "backend-key"})  # fmt: skip
        assert about.status == 400, await about.text()
        assert about.headers["Cache-Control"] == "no-store", await about.text()
        assert "Cache-Control" not in (await client.get("/healthz")).headers


async def test_a_path_beyond_a_customer_is_still_no_such_path() -> None:
    async with TestClient(TestServer(api_app())) as client:
        reply = await client.get(f"/v1/customers/{GUID}/export/more")
        assert reply.status == 404 and (await reply.json())["error"] == "not_found"


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_a_slash_in_a_customer_id_is_written_percent_encoded(method: str, path: str) -> None:
    app = api_app()
    request = make_mocked_request(method, path.format("acme%2F123"), app=app)
    match = await app.router.resolve(request)
    assert match.http_exception is None
    assert match["customer_id"] == "acme/123"


@pytest.mark.parametrize(
    "limit", ["1_0", "%205", "5%20", "%D9%A3", "+5", "011", "0", "000000000010"]
)
async def test_a_limit_is_plain_digits_from_1_to_10(limit: str) -> None:
    """int() would take 1_0, spaces, a sign and other scripts' digits; the API does not."""
    async with TestClient(TestServer(api_app())) as client:
        reply = await client.get(
            f"/v1/customers/c-1/recommendations?limit={limit}",
            headers={"Authorization": "Bearer backend-key"},
        )
        assert reply.status == 400, await reply.text()
        assert (await reply.json())["error"] == "invalid_limit"


@pytest.mark.parametrize(
    ("written", "customer_id"),
    [("bb-%25FF", "bb-%FF"), ("caf%C3%A9", "café"), ("a%2Fb", "a/b"), ("100%25", "100%")],
)
async def test_a_well_encoded_customer_id_is_taken_decoded(written: str, customer_id: str) -> None:
    from streams.api.request_checks import customer_id_of

    app = api_app()
    request = make_mocked_request("GET", f"/v1/customers/{written}/recommendations", app=app)
    request._match_info = await app.router.resolve(request)
    assert customer_id_of(request) == customer_id


@pytest.mark.parametrize("written", ["bb-%FF", "bb-%ZZ", "50%", "%C3", "caf%C3%A9%"])
async def test_a_badly_encoded_customer_id_is_a_400_not_the_id_as_written(written: str) -> None:
    """Left as written, "bb-%FF" was the same customer as "bb-%25FF"."""
    from streams.api.errors import ApiError
    from streams.api.request_checks import customer_id_of

    app = api_app()
    request = make_mocked_request("DELETE", f"/v1/customers/{written}", app=app)
    request._match_info = await app.router.resolve(request)
    with pytest.raises(ApiError) as refused:
        customer_id_of(request)
    assert (refused.value.status, refused.value.code) == (400, "invalid_customer_id")


@pytest.mark.parametrize("written", [b"bb-%FF", b"bb-%ZZ"])
@pytest.mark.parametrize("origin", [b"", b"http://x"], ids=["origin-form", "absolute-form"])
async def test_a_badly_encoded_customer_id_sent_as_it_is_gets_a_400(
    written: bytes, origin: bytes
) -> None:
    from tests.unit.api_app import raw_request

    async with TestServer(api_app()) as server:
        reply = await raw_request(
            server,
            b"DELETE " + origin + b"/v1/customers/" + written + b" HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer backend-key\r\n\r\n",
        )
    assert reply.status == 400 and b"invalid_customer_id" in reply.body


@pytest.mark.parametrize(
    ("path", "allowed"),
    [("/healthz", True), ("/readyz", True), ("/v1/offers", False), ("/metrics", False)],
)
async def test_head_is_answered_on_the_probes_alone(path: str, allowed: bool) -> None:
    async with TestClient(TestServer(api_app())) as client:
        route = await client.app.router.resolve(make_mocked_request("HEAD", path, app=client.app))
    assert (route.http_exception is None) is allowed


TOKYO = OfferCatalogue(version="v", offers=[Offer(offer_id="tips", title="Tips", channels=["web"])],
                       contact_policy=ContactRules(timezone="Asia/Tokyo"))  # fmt: skip


async def test_a_customers_profile_counts_the_catalogues_days() -> None:
    zones: list[str] = []

    async def read_views(
        customer_ids: Any, now: Any = None, faults: Any = None, home_timezone: str = "UTC"
    ) -> list[tuple[bool, None]]:
        zones.append(home_timezone)
        return [(False, None)]  # no profile: a 404, after the read

    async def erased(customer_ids: Any) -> list[bool]:
        return [False] * len(customer_ids)

    async def recent(customer_id: str, n: Any = None, faults: Any = None) -> list[str]:
        return []

    store = SimpleNamespace(read_views=read_views, erased=erased,
                            decisions=SimpleNamespace(recent=recent))  # fmt: skip
    app = api_app(store=store, catalogue=SimpleNamespace(current=TOKYO))
    async with TestClient(TestServer(app)) as client:
        reply = await client.get("/v1/customers/c1",
                                 headers={"Authorization": "Bearer backend-key"})  # fmt: skip
        assert reply.status == 404
    assert zones == ["Asia/Tokyo"]


DECISION = {"decision_id": "d-1", "customer_id": "c-new1", "offers": [], "control_group": True}


def _decisions_only(erased: bool) -> Any:
    """A store that holds a customer's recent decisions but no touchpoint of theirs."""

    async def read_views(
        customer_ids: Any, now: Any = None, faults: Any = None, home_timezone: str = "UTC"
    ) -> list[tuple[bool, None]]:
        return [(erased, None)]

    async def erased_ones(customer_ids: Any) -> list[bool]:
        return [erased] * len(customer_ids)

    async def recent(customer_id: str, n: Any = None, faults: Any = None) -> list[str]:
        return [json.dumps(DECISION)]

    return SimpleNamespace(read_views=read_views, erased=erased_ones,
                           decisions=SimpleNamespace(recent=recent))  # fmt: skip


def _profile_app(store: Any) -> Any:
    in_control = SimpleNamespace(control_group=SimpleNamespace(contains=lambda _: True))
    return api_app(store=store, catalogue=SimpleNamespace(current=TOKYO), risk=RiskHolder(),
                   policy=SimpleNamespace(contact_policy=in_control))  # fmt: skip


async def test_a_customer_with_decisions_and_no_touchpoint_has_a_profile() -> None:
    """A hold-out web visitor whose recommendations were asked for: their profile is the
    features of a customer Moments knows nothing else of, with those decisions (it was a
    404, while their export listed the decisions)."""
    async with TestClient(TestServer(_profile_app(_decisions_only(erased=False)))) as client:
        reply = await client.get("/v1/customers/c-new1",
                                 headers={"Authorization": "Bearer backend-key"})  # fmt: skip
        assert reply.status == 200, await reply.text()
        body = await reply.json()
    assert body["recent_decisions"] == [DECISION]
    assert (body["customer_id"], body["segment"], body["value"]) == ("c-new1", "new", 0.0)
    assert body["recent_touchpoints"] == [] and body["features"]["events"] == 0


async def test_an_erased_customers_decisions_make_no_profile() -> None:
    async with TestClient(TestServer(_profile_app(_decisions_only(erased=True)))) as client:
        reply = await client.get("/v1/customers/c-new1",
                                 headers={"Authorization": "Bearer backend-key"})  # fmt: skip
        assert reply.status == 404, await reply.text()
