"""An item's date is checked against when its request's body came, not when the
request began (streams/api/ingest_views.py): a slow upload's items are no later."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer

from streams.settings import Settings
from tests.unit.api_app import KEYS, SHOP, api_app
from tests.unit.test_ingest_erased_routes import AUTH, Publisher

SKEW_S = 1.0


def item(path: str, ts: datetime) -> dict[str, str]:
    at = ts.isoformat()
    if path == "/v1/events":
        return {"type": "web_click", "event_id": "e1", "customer_id": "c1", "ts": at, "page": "/"}
    return {"decision_id": "d1", "customer_id": "c1", "offer_id": "o1", "outcome": "shown",
            "ts": at}  # fmt: skip


@pytest.mark.parametrize("path", ["/v1/events", "/v1/outcomes"])
async def test_an_item_dated_within_the_skew_of_its_bodys_arrival_is_taken(path: str) -> None:
    """Dated 1.6 s ahead of the request's start with 1 s allowed, its body coming 1.5 s
    later: within the skew of when it came (as a worker, later still, takes it)."""
    publisher = Publisher()
    settings = Settings(api_keys=KEYS, api_cors_origins=SHOP, max_future_skew_s=SKEW_S)
    body = json.dumps(item(path, datetime.now(UTC) + timedelta(seconds=SKEW_S + 0.6))).encode()

    async def slowly() -> AsyncIterator[bytes]:
        yield body[:1]
        await asyncio.sleep(1.5)
        yield body[1:]

    async with TestClient(TestServer(api_app(settings, publisher=publisher))) as client:
        reply = await client.post(path, data=slowly(),
                                  headers={**AUTH, "Content-Type": "application/json"})  # fmt: skip
        assert reply.status == 202, await reply.text()
    assert len(publisher.records) == 1


@pytest.mark.parametrize("path", ["/v1/events", "/v1/outcomes"])
async def test_an_item_dated_beyond_the_skew_is_refused(path: str) -> None:
    settings = Settings(api_keys=KEYS, api_cors_origins=SHOP, max_future_skew_s=SKEW_S)
    body = item(path, datetime.now(UTC) + timedelta(seconds=SKEW_S + 30))
    async with TestClient(TestServer(api_app(settings, publisher=Publisher()))) as client:
        reply = await client.post(path, json=body, headers=AUTH)
        assert reply.status == 422, await reply.text()
        assert "in the future" in (await reply.json())["details"][0]["reason"]
