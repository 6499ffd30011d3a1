"""A touchpoint's decision claimed in Redis (lua/own.lua): the first owner keeps it, the
same owner (its record read again) still owns it, another gets it only once the first
sent nothing within the lease, and nobody once it was sent; an erased customer's claim
refuses nobody."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from feature_store import FeatureStore, StoreConfig
from feature_store.records import DecisionRecord
from schemas import TouchpointEvent, decode_touchpoint
from streams.services import Services
from tests.integration.test_api_support import keys_tagged

pytestmark = pytest.mark.integration
LEASE_MS = 1000


def click(event_id: str, customer: str = "c1") -> TouchpointEvent:
    return decode_touchpoint(json.dumps({
        "type": "web_click", "event_id": event_id, "customer_id": customer,
        "ts": datetime.now(UTC).isoformat(), "page": "/",
    }))  # fmt: skip


async def test_the_first_owner_of_a_decision_keeps_it(kafka_redis: Services) -> None:
    prefix = f"do{uuid.uuid4().hex[:8]}"
    store = FeatureStore.from_url(kafka_redis.redis_url, StoreConfig(prefix.encode(), prefix))

    async def own(*claims: tuple[str, str, str]) -> list[bool]:
        return await store.decisions.own(claims, lease_ms=LEASE_MS)

    try:
        await store.apply([click("e1"), click("e2")])
        assert await own(("c1", "e1", "tp/0/7"), ("c1", "e1", "tp/3/9")) == [True, False]
        assert await own(("c1", "e1", "tp/0/7")) == [True]  # read again: still its own
        assert await own(("c1", "e2", "tp/3/9")) == [True]  # another touchpoint
        # e2's decision recorded, not sent yet: its owner's still
        record = DecisionRecord("c1", "d2", int(time.time() * 1000), b"{}", trigger_event_id="e2")
        assert await store.decisions.record([replace(record, sent=False)]) == [True]
        assert await own(("c1", "e2", "tp/0/7")) == [False]
        await asyncio.sleep(LEASE_MS / 1000 + 0.2)  # e1's owner sent nothing: given up
        assert await own(("c1", "e1", "tp/3/9")) == [True]
        assert await store.decisions.record([record]) == [True]  # e2's sent: claim gone
        claims = [k for k in await keys_tagged(kafka_redis.redis_url, store.pseudonym("c1"))
                  if ":own:" in k]  # fmt: skip
        assert not [k for k in claims if k.endswith(":own:t:e2")]
        assert await own(("c1", "e2", "tp/0/7"), ("c1", "e2", "tp/3/9")) == [False, False]
        await store.erase("c1")
        assert await own(("c1", "e3", "tp/0/1"), ("c1", "e3", "tp/0/2")) == [True, True]
    finally:
        await store.close()
