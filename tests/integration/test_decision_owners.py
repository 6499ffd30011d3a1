"""A touchpoint's decision claimed in Redis (lua/own.lua): the first owner keeps it, the
same owner (its record read again) still owns it, another gets it only once the first
recorded nothing within the lease; an erased customer's claim refuses nobody."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from feature_store import FeatureStore, StoreConfig
from feature_store.decision_log import CLAIM_LEASE_MS
from feature_store.records import DecisionRecord
from schemas import TouchpointEvent, decode_touchpoint
from streams.services import Services

pytestmark = pytest.mark.integration
NOW = 1_800_000_000.0


def click(event_id: str, customer: str = "c1") -> TouchpointEvent:
    return decode_touchpoint(json.dumps({
        "type": "web_click", "event_id": event_id, "customer_id": customer,
        "ts": datetime.fromtimestamp(NOW, UTC).isoformat(), "page": "/",
    }))  # fmt: skip


async def test_the_first_owner_of_a_decision_keeps_it(kafka_redis: Services) -> None:
    prefix = f"do{uuid.uuid4().hex[:8]}"
    now = [NOW]
    store = FeatureStore.from_url(kafka_redis.redis_url, StoreConfig(prefix.encode(), prefix),
                                  clock=lambda: now[0])  # fmt: skip
    own = store.decisions.own
    try:
        await store.apply([click("e1"), click("e2")])
        assert await own([("c1", "e1", "tp/0/7"), ("c1", "e1", "tp/3/9")]) == [True, False]
        assert await own([("c1", "e1", "tp/0/7")]) == [True]  # read again: still its own
        assert await own([("c1", "e2", "tp/3/9")]) == [True]  # another touchpoint
        now[0] += CLAIM_LEASE_MS / 1000 - 1
        assert await own([("c1", "e1", "tp/3/9")]) == [False]
        now[0] += 2  # the first owner recorded nothing within the lease: given up
        assert await own([("c1", "e1", "tp/3/9")]) == [True]
        # e2's decision recorded by its owner: another never takes it over
        record = DecisionRecord("c1", "d2", int(now[0] * 1000), b"{}", trigger_event_id="e2")
        assert await store.decisions.record([replace(record, sent=False)]) == [True]
        now[0] += CLAIM_LEASE_MS / 1000 + 1
        assert await own([("c1", "e2", "tp/0/7"), ("c1", "e2", "tp/3/9")]) == [False, True]
        await store.erase("c1")
        assert await own([("c1", "e3", "tp/0/1"), ("c1", "e3", "tp/0/2")]) == [True, True]
    finally:
        await store.close()
