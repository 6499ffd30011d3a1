"""A customer whose stored data Redis holds in a form Moments cannot read (a tool's, a
bug's, another version's), on a real API, Kafka and Redis: the erasure removes every
key, blocks the id and publishes its record, with a receipt that tells the truth.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from feature_store.keys import CustomerKeys, KeySet
from streams.services import Services
from tests.integration.conftest import SECRET, Pipeline, Worker
from tests.integration.test_api_support import (
    DEV_AUTH,
    call,
    read_to_end,
)

pytestmark = pytest.mark.integration

IMPOSSIBLE_MS = "-100000000000000000000"  # -1e20 ms: no date can hold it


@pytest.fixture(scope="module")
def deployment(
    kafka_redis: Services, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Pipeline, Worker]]:
    pipeline = Pipeline(kafka_redis, Path(tmp_path_factory.mktemp("corrupt")))
    try:
        pipeline.start_worker()
        api = pipeline.start_api(MOMENTS_CONTROL_PERCENT="0", MOMENTS_API_BUDGET_MS="5000")
        yield pipeline, api
    finally:
        pipeline.stop()


def keys_of(pipeline: Pipeline, customer_id: str) -> KeySet:
    return CustomerKeys(SECRET.encode(), pipeline.prefix.rstrip("-")).for_customer(customer_id)


async def erasure_records(pipeline: Pipeline, customer_id: str) -> list[dict[str, Any]]:
    records = await read_to_end(pipeline.services.kafka_bootstrap,
                                pipeline.topic("customer-erasures"))  # fmt: skip
    return [json.loads(r.value) for r in records if r.key == customer_id.encode()]


@pytest.fixture
async def admin(kafka_redis: Services) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(kafka_redis.redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    ("name", "held"),
    [("impossible", IMPOSSIBLE_MS), ("infinite", "1e400"), ("no-number", "yesterday"),
     ("fraction", "1.5"), ("not-utf8", b"\xff")],
)  # fmt: skip
async def test_an_erasure_over_a_tombstone_that_holds_no_time_is_recorded(
    deployment: tuple[Pipeline, Worker], admin: aioredis.Redis, name: str, held: bytes | str
) -> None:
    """A tombstone holding no time a date can hold (a tool's, a bug's) beside a
    customer's keys: DELETE erased them, then failed converting it (a 500, and no
    erasure record published; -1e20 ms). It is written over as if none were there: the
    receipt says erased now, the block has its end, and the record is published."""
    pipeline, api = deployment
    customer = f"{pipeline.prefix}tomb-{name}"
    keys = keys_of(pipeline, customer)
    await admin.hset(keys.profile, "n", "1")
    await admin.set(keys.tombstone, held)
    before = datetime.now(UTC)
    erased = await call("DELETE", f"{api.url}/v1/customers/{customer}", headers=DEV_AUTH)
    assert erased.status == 200, erased
    erased_at = datetime.fromisoformat(erased.json["erased_at"].replace("Z", "+00:00"))
    assert abs((erased_at - before).total_seconds()) < 10, erased.json
    assert await admin.exists(keys.profile) == 0
    assert await admin.pttl(keys.tombstone) > 0  # the block's usual end, not none
    stamp = int(await admin.get(keys.tombstone) or b"0")
    assert abs(stamp / 1000 - before.timestamp()) < 10
    assert len(await erasure_records(pipeline, customer)) == 1


def test_no_customer_id_is_logged(deployment: tuple[Pipeline, Worker]) -> None:
    """Run last in the module: the API's and worker's logs name none of the cases."""
    pipeline, _ = deployment
    for worker in pipeline.workers:
        text = worker.log_path.read_text(errors="replace")
        assert "tomb-" not in text, text[-2000:]
