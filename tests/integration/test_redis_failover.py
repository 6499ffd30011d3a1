"""Redis refuses writes for a while (a replica after a failover, as ``READONLY`` says):
the worker waits and retries instead of dead-lettering good events, and the API answers
with default offers instead of an error. Once Redis takes writes again, every event is
applied, once.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from feature_store import ApplyStatus, FeatureStore, StoreConfig, StoreUnavailable
from schemas import WebClick
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

        async def retried() -> bool:  # more times than a batch is tried before it is
            # given up (MOMENTS_MAX_ATTEMPTS, 3): waited for, not blamed on the events
            return worker.metric("moments_batch_retries_total", reason="StoreUnavailable") > 4

        await eventually(retried, "the batch retried past its attempts", within=60)
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


class MovingAddress:
    """One address in front of two servers, as a DNS name or a virtual IP is after a
    failover: new connections go to ``target``, those made before stay where they are."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._forward, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


async def test_after_a_failover_behind_one_address_the_store_writes_to_the_new_primary(
    private_redis: LocalRedis, tmp_path: Path
) -> None:
    """The old primary, now a replica, answers READONLY on the connection the store
    holds: the store connects again, reaches the new primary (which has never seen its
    scripts), loads them there and applies; only outages are raised meanwhile."""
    second = LocalRedis(tmp_path / "second", appendonly=False)
    second.start()
    front = MovingAddress(private_redis.port)
    await front.start()
    old = aioredis.Redis.from_url(private_redis.url)
    new = aioredis.Redis.from_url(second.url)
    store = FeatureStore.from_url(f"redis://127.0.0.1:{front.port}/0", StoreConfig(secret=b"s"))
    try:
        assert await store.apply([click("fo-1")]) == [ApplyStatus.APPLIED]
        await new.replicaof("NO", "ONE")  # promoted (it never replicated: a fresh server)
        await old.replicaof("127.0.0.1", second.port)  # demoted, behind the same address
        front.target = second.port
        outcomes: list[object] = []
        for _ in range(5):  # the same event, as the worker retries a batch
            try:
                outcomes.append(await store.apply([click("fo-2")]))
                break
            except StoreUnavailable as exc:  # an outage: the worker waits and retries
                outcomes.append(str(exc).split(":")[0])
        assert outcomes[-1] == [ApplyStatus.APPLIED], outcomes
        assert len(outcomes) <= 3, outcomes
        assert await new.exists(store._keys.for_customer("fo-2").profile) == 1
    finally:
        await store.close()
        await old.aclose()
        await new.aclose()
        front.close()
        second.stop()


def click(customer_id: str) -> WebClick:
    return WebClick(event_id=f"{customer_id}-e", customer_id=customer_id,
                    ts=datetime.now(UTC), page="/")  # fmt: skip
