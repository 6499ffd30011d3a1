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
from tests.integration.conftest import Pipeline

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


async def test_readiness_answers_within_a_probe_timeout_while_redis_is_frozen(
    pipeline: Pipeline, private_redis: LocalRedis
) -> None:
    """A worker's and an API's /readyz wait a second for Redis, not its request timeout
    (5 s by default): an orchestrator's probe (3 s in deploy/k8s) gets an answer."""
    assert private_redis.process is not None
    worker = pipeline.start_worker(MOMENTS_REDIS_URL=private_redis.url)
    api = pipeline.start_api(redis_url=private_redis.url)
    os.kill(private_redis.process.proc.pid, signal.SIGSTOP)
    try:
        for process, ready in ((worker, 503), (api, 200)):  # the API stays in, degraded
            started = time.monotonic()
            status, body = await asyncio.to_thread(process.get, "/readyz")
            took = time.monotonic() - started
            assert status == ready, body
            assert '"redis":"down' in body.replace(" ", ""), body
            assert took < 2.5, took
    finally:
        os.kill(private_redis.process.proc.pid, signal.SIGCONT)
