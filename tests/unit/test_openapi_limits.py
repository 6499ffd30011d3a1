"""/openapi.json states the item limit the API enforces (MOMENTS_API_MAX_ITEMS)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from streams.api.openapi import openapi_document, openapi_spec
from streams.settings import Settings
from tests.unit.api_app import api_app


def max_items(spec: dict[str, Any], path: str) -> int:
    body = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    listed = next(s for s in body["oneOf"] if s.get("type") == "array")
    number: int = listed["maxItems"]
    return number


@pytest.mark.parametrize("path", ["/v1/events", "/v1/outcomes"])
def test_the_list_limit_is_the_configured_one(path: str) -> None:
    assert max_items(openapi_spec(Settings(api_max_items=7)), path) == 7
    assert max_items(openapi_spec(), path) == Settings().api_max_items


async def test_the_served_description_follows_the_settings() -> None:
    app = api_app(Settings(api_max_items=3))
    async with TestClient(TestServer(app)) as client:
        spec = await (await client.get("/openapi.json")).json()
    assert max_items(spec, "/v1/events") == max_items(spec, "/v1/outcomes") == 3


async def test_the_description_is_written_once_for_its_limits() -> None:
    """It was built and encoded at every request (about a millisecond: a client asking
    without end slowed recommendations); the body limit is in it too."""
    settings = Settings(api_max_items=4, api_max_body_bytes=12_345)
    assert openapi_document(settings) is openapi_document(settings.replace())
    app = api_app(settings)
    async with TestClient(TestServer(app)) as client:
        served = await (await client.get("/openapi.json")).json()
    assert served == openapi_spec(settings) and max_items(served, "/v1/events") == 4
    assert "12345" in json.dumps(served)
