"""A full Redis (``maxmemory`` reached, ``noeviction``): writes are refused as an outage,
to wait out, not as bad events; an erasure still erases and blocks the customer, because
Redis checks for room only before a script's first write, and the erase script's first
write is a DEL (which frees memory). A flag line (``#!lua flags=...``) without
``allow-oom`` on that script would refuse it whole."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from feature_store import ApplyStatus, FeatureStore, StoreConfig, StoreFull
from schemas import WebClick
from streams.services import LocalRedis
from tests.integration.conftest import Pipeline
from tests.integration.test_api_support import DEV_AUTH, call, eventually

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

        with pytest.raises(StoreFull, match="OOM command not allowed"):  # (unavailable)
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


async def test_an_api_on_a_full_redis_says_so_in_its_log_once_and_when_it_takes_writes(
    pipeline: Pipeline, private_redis: LocalRedis, admin: aioredis.Redis
) -> None:
    """A full Redis still answers its look: every recommendation was a fallback
    (``store_unavailable``), and the API's log said nothing at all of why."""
    api = pipeline.start_api(redis_url=private_redis.url)
    url = f"{api.url}/v1/customers/full-1/recommendations?channel=web"
    assert (await call("GET", url, headers=DEV_AUTH)).json["fallback"] is False
    used = int((await admin.info("memory"))["used_memory"])
    await admin.config_set("maxmemory-policy", "noeviction")
    await admin.config_set("maxmemory", max(used - 200_000, 1))
    for _ in range(3):
        reply = await call("GET", url, headers=DEV_AUTH)
        assert reply.json["fallback"] is True, reply
        assert reply.json["reasons"][0] == "fallback:store_unavailable", reply

    def said(text: str) -> list[str] | None:
        lines = api.log_path.read_text().splitlines()
        return lines if any(text in line for line in lines) else None

    async def said_refused() -> list[str] | None:
        return said("Redis answers but refuses the store's writes")

    lines = await eventually(said_refused, "the API to log that Redis refuses writes", 15)
    assert not any("Redis cannot be reached" in line for line in lines), lines[-10:]
    await admin.config_set("maxmemory", 0)
    assert (await call("GET", url, headers=DEV_AUTH)).json["fallback"] is False

    async def said_back() -> list[str] | None:
        return said("Redis takes the store's writes again, after")

    lines = await eventually(said_back, "the API to log that Redis takes writes again", 15)
    refusals = [line for line in lines if "Redis answers but refuses" in line]
    assert len(refusals) == 1, lines[-10:]


async def test_an_api_on_a_full_redis_counts_each_decision_it_could_not_keep_once(
    pipeline: Pipeline, private_redis: LocalRedis, admin: aioredis.Redis
) -> None:
    """While Redis is full every recommendation is a fallback, published unrecorded and
    kept in no outbox: each is counted in moments_outbox_write_failures_total once. The
    batch's decision its refused write left unshown was counted too (twice the
    recommendations), and the warning said the decisions were recorded."""
    api = pipeline.start_api(redis_url=private_redis.url)
    url = f"{api.url}/v1/customers/full-{{}}/recommendations?channel=web"
    assert (await call("GET", url.format(0), headers=DEV_AUTH)).json["fallback"] is False
    used = int((await admin.info("memory"))["used_memory"])
    await admin.config_set("maxmemory-policy", "noeviction")
    await admin.config_set("maxmemory", max(used - 200_000, 1))
    asked = 30
    for i in range(asked):
        assert (await call("GET", url.format(i), headers=DEV_AUTH)).json["fallback"] is True

    async def counted() -> float | None:
        count = api.metric("moments_outbox_write_failures_total")
        return count if count >= asked else None

    await eventually(counted, "the fallbacks published to be counted", 15)
    await asyncio.sleep(1.5)  # the fallbacks' checks are over: nothing more to count
    assert api.metric("moments_outbox_write_failures_total") == asked
    lines = [line for line in api.log_path.read_text().splitlines() if "could not keep" in line]
    assert len(lines) == 1 and "their record failed too" in lines[0], lines
