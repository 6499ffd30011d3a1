"""A Redis that stops answering (its machine frozen, a connection dropped silently on the
way) is an outage after the request timeout: feature updates, model reads and the
readiness ping report it, and all work again once Redis answers."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import UTC, datetime

import pytest

from feature_store import ApplyStatus, FeatureStore, StoreConfig, StoreUnavailable
from schemas import WebClick
from streams.services.local_redis import LocalRedis

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
TIMEOUT_S = 1.0  # MOMENTS_REDIS_TIMEOUT_S
IN_TIME = TIMEOUT_S + 10  # well before this, or it waits for ever


def click(event_id: str) -> WebClick:
    return WebClick(event_id=event_id, customer_id="cust-frozen", ts=NOW, page="/")


async def test_a_frozen_redis_is_unavailable_and_then_used_again(
    private_redis: LocalRedis,
) -> None:
    assert private_redis.process is not None
    pid = private_redis.process.proc.pid
    store = FeatureStore.from_url(private_redis.url, StoreConfig(secret=b"frozen"),
                                  timeout_s=TIMEOUT_S)  # fmt: skip
    assert await store.apply([click("before")]) == [ApplyStatus.APPLIED]
    assert await store.ping() and await store.models.version("offers") == 0
    os.kill(pid, signal.SIGSTOP)  # connections stay open; nothing answers
    frozen_at = time.monotonic()
    try:
        outcomes = await asyncio.wait_for(
            asyncio.gather(
                store.apply([click("during")]),
                store.models.version("offers"),
                store.ping(),
                return_exceptions=True,
            ),
            IN_TIME,
        )
        waited = time.monotonic() - frozen_at
    finally:
        os.kill(pid, signal.SIGCONT)
    assert all(isinstance(o, StoreUnavailable) for o in outcomes), outcomes
    assert TIMEOUT_S * 0.9 <= waited < TIMEOUT_S + 5, waited  # the timeout set, not another
    applied = await asyncio.wait_for(store.apply([click("during")]), IN_TIME)
    assert applied in ([ApplyStatus.APPLIED], [ApplyStatus.DUPLICATE])  # written, maybe run
    assert await store.ping()
    await store.close()
