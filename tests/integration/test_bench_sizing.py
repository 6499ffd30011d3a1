"""moments bench --only sizing: Redis memory per customer, by kind of key, on a store of
its own that it removes after."""

from __future__ import annotations

import asyncio

import pytest
import redis

from streams.bench_sizing import bench_sizing
from streams.services import Services

pytestmark = pytest.mark.integration


def test_each_kind_of_key_is_measured_and_the_store_removed(kafka_redis: Services) -> None:
    before = set(redis.Redis.from_url(kafka_redis.redis_url).scan_iter(match="bz*"))
    report = asyncio.run(bench_sizing(kafka_redis.redis_url, customers=200, touchpoints=10,
                                      decisions=2))  # fmt: skip
    per_key, per_customer = report["bytes_per_key_by_kind"], report["bytes_per_customer_by_kind"]
    assert {"p", "w", "seen", "recent", "dec", "ctx"} <= set(per_key)
    # every decision keeps a context: two a customer
    assert per_customer["ctx"] == pytest.approx(2 * per_key["ctx"], rel=0.01)
    assert (
        0 < report["kb_per_customer_after_touchpoints"] < report["kb_per_customer_after_decisions"]
    )
    assert set(redis.Redis.from_url(kafka_redis.redis_url).scan_iter(match="bz*")) == before
