"""A full Redis (``maxmemory`` reached, ``noeviction``): writes are refused as an outage,
to wait out, not as bad events; an erasure still erases and blocks the customer, because
Redis checks for room only before a script's first write, and the erase script's first
write is a DEL (which frees memory). A flag line (``#!lua flags=...``) without
``allow-oom`` on that script would refuse it whole."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from feature_store import ApplyStatus, FeatureStore, StoreConfig, StoreUnavailable
from schemas import WebClick
from streams.services import LocalRedis

pytestmark = pytest.mark.integration


def _click(event_id: str, customer_id: str) -> WebClick:
    return WebClick(event_id=event_id, customer_id=customer_id, ts=datetime.now(UTC),
                    page="/", category="books")  # fmt: skip


@pytest.fixture
async def admin(private_redis: LocalRedis) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(private_redis.url, decode_responses=True)
    try:
        yield client
    finally:
        await client.config_set("maxmemory", 0)
        await client.aclose()


async def test_a_full_redis_refuses_events_as_an_outage_and_still_erases(
    private_redis: LocalRedis, admin: aioredis.Redis
) -> None:
    prefix = f"full{uuid.uuid4().hex[:6]}"
    store = FeatureStore.from_url(private_redis.url, StoreConfig(prefix.encode(), prefix))
    try:
        assert await store.apply([_click(f"e{i}", "ana") for i in range(5)]) == [
            ApplyStatus.APPLIED] * 5  # fmt: skip
        assert await store.apply([_click("b0", "ben")]) == [ApplyStatus.APPLIED]
        used = int((await admin.info("memory"))["used_memory"])
        await admin.config_set("maxmemory-policy", "noeviction")
        await admin.config_set("maxmemory", max(used - 200_000, 1))

        with pytest.raises(StoreUnavailable, match="OOM command not allowed"):
            await store.apply([_click("b1", "ben")])

        receipt = await store.erase("ana")
        assert receipt.keys_removed > 0 and "profile" in receipt.kinds, receipt
        assert await store.read("ana") is None
        assert await store.erased(["ana", "ben"]) == [True, False]
        assert await store.read("ben") is not None  # nothing else went

        await admin.config_set("maxmemory", 0)  # room again: the refused event left no
        assert await store.apply([_click("b1", "ben")]) == [ApplyStatus.APPLIED]  # mark
        ben = await store.read("ben")
        assert ben is not None and ben.events == 2
        assert await store.apply([_click("e6", "ana")]) == [ApplyStatus.ERASED]
    finally:
        await store.close()
