"""Redis refuses writes for a while (a replica after a failover, as ``READONLY`` says):
the worker waits and retries instead of dead-lettering good events, and the API answers
with default offers instead of an error. Once Redis takes writes again, every event is
applied, once.
"""

from __future__ import annotations

import asyncio
import json

import pytest
import redis.asyncio as aioredis

from streams.services import LocalRedis, free_port
from tests.integration.conftest import Pipeline
from tests.integration.test_api_support import DEV_AUTH, call, event, eventually, read_to_end
from tests.integration.test_touchpoints_pipeline import produce

pytestmark = pytest.mark.integration


async def test_a_redis_that_refuses_writes_is_waited_for_not_blamed_on_the_events(
    pipeline: Pipeline, private_redis: LocalRedis
) -> None:
    worker = pipeline.start_worker(MOMENTS_REDIS_URL=private_redis.url)
    api = pipeline.start_api(redis_url=private_redis.url, MOMENTS_API_BUDGET_MS="3000")
    before = [event("web_click", f"fo-{n}", f"fo-a{n}", minutes_ago=3) for n in range(3)]
    during = [event("web_click", f"fo-{n}", f"fo-b{n}", minutes_ago=2) for n in range(6)]

    async def send(events: list[dict[str, object]]) -> None:
        records = [(str(e["customer_id"]).encode(), json.dumps(e).encode()) for e in events]
        await produce(pipeline.services.kafka_bootstrap, pipeline.topic("touchpoints"), records)

    async def events_applied() -> float:
        return worker.metric("moments_events_total", type="web_click", result="ok")

    await send(before)
    await eventually(lambda: _at_least(events_applied, len(before)), "the first events applied")

    admin = aioredis.Redis.from_url(private_redis.url)
    try:
        await admin.replicaof("127.0.0.1", free_port())  # a master that never answers
        await send(during)
        await asyncio.sleep(6)  # several batches' worth of retries
        assert await events_applied() == len(before)  # waiting, not applied
        assert worker.metric("moments_dead_letters_total") == 0
        rec = await call("GET", f"{api.url}/v1/customers/fo-0/recommendations", headers=DEV_AUTH)
        assert rec.status == 200, rec  # an answer, not an error

        await admin.replicaof("NO", "ONE")  # writes are taken again
        total = len(before) + len(during)
        await eventually(lambda: _at_least(events_applied, total), "the held events applied")
    finally:
        await admin.aclose()
    assert await events_applied() == total
    letters = await read_to_end(
        pipeline.services.kafka_bootstrap, pipeline.topic("touchpoints-dlq")
    )
    assert letters == []


async def _at_least(read: object, n: int) -> bool:
    value = await read()  # type: ignore[operator]
    return bool(value >= n)
