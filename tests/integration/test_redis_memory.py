"""How full Redis is reaches the metrics every half minute, from a single Redis and from
the fullest node of a cluster, and an eviction policy changed while Moments runs is
said when it is read (the start checks it only once)."""

from __future__ import annotations

import logging

import pytest
import redis.asyncio as aioredis

from feature_store import FeatureStore, StoreConfig
from streams.metrics import Metrics
from streams.redis_memory_watch import RedisMemoryWatch
from streams.services import LocalRedis
from streams.services.local_redis import LocalRedisCluster

pytestmark = pytest.mark.integration

MB = 1024 * 1024


def _gauge(metrics: Metrics, name: str) -> float | None:
    return metrics.registry.get_sample_value(name)


async def _config(url: str, **values: str | int) -> None:
    admin = aioredis.Redis.from_url(url)
    try:
        for name, value in values.items():
            await admin.config_set(name.replace("_", "-"), value)
    finally:
        await admin.aclose()


async def test_memory_and_a_policy_changed_while_running_reach_the_metrics(
    private_redis: LocalRedis, caplog: pytest.LogCaptureFixture
) -> None:
    await _config(private_redis.url, maxmemory=64 * MB, maxmemory_policy="noeviction")
    store = FeatureStore.from_url(private_redis.url, StoreConfig(secret=b"s"))
    metrics = Metrics()
    watch = RedisMemoryWatch(store, metrics)
    try:
        with caplog.at_level(logging.INFO, logger="streams.redis_memory_watch"):
            first = await watch.check()
            assert first is not None and 0 < first.used_bytes < 64 * MB
            assert _gauge(metrics, "moments_redis_memory_max_bytes") == 64 * MB
            assert _gauge(metrics, "moments_redis_memory_used_bytes") == first.used_bytes
            assert _gauge(metrics, "moments_redis_evicting") == 0
            assert not caplog.records  # the start check says what it found

            await _config(private_redis.url, maxmemory_policy="allkeys-lru")
            await watch.check()
            assert _gauge(metrics, "moments_redis_evicting") == 1
            warned = [r for r in caplog.records if r.levelno == logging.WARNING]
            assert len(warned) == 1 and "allkeys-lru" in warned[0].getMessage()
            await watch.check()  # said once, not at every reading
            assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1

            await _config(private_redis.url, maxmemory_policy="noeviction", maxmemory=0)
            assert await watch.check() is not None
            assert _gauge(metrics, "moments_redis_evicting") == 0
            assert _gauge(metrics, "moments_redis_memory_max_bytes") == 0  # no limit
            assert "no longer evicts" in caplog.records[-1].getMessage()
    finally:
        await store.close()


async def test_a_redis_that_does_not_answer_leaves_the_last_reading(
    private_redis: LocalRedis,
) -> None:
    store = FeatureStore.from_url(private_redis.url, StoreConfig(secret=b"s"))
    metrics = Metrics()
    watch = RedisMemoryWatch(store, metrics, within_s=2.0)
    try:
        read = await watch.check()
        assert read is not None
        private_redis.stop()
        assert await watch.check() is None
        assert _gauge(metrics, "moments_redis_memory_used_bytes") == read.used_bytes
    finally:
        await store.close()


async def test_the_fullest_node_of_a_cluster_is_reported(cluster: LocalRedisCluster) -> None:
    full = cluster.nodes[-1]
    for node in cluster.nodes:
        await _config(node.url, maxmemory=512 * MB)
    await _config(full.url, maxmemory=16 * MB)  # the same data against a smaller limit
    store = FeatureStore.from_url(cluster.url, StoreConfig(secret=b"s"), cluster=True)
    metrics = Metrics()
    try:
        nodes = await store.server.memory()
        assert len(nodes) == len(cluster.nodes)
        fullest = await RedisMemoryWatch(store, metrics).check()
        assert fullest is not None and fullest.max_bytes == 16 * MB
        assert _gauge(metrics, "moments_redis_memory_max_bytes") == 16 * MB
    finally:
        await store.close()
        for node in cluster.nodes:
            await _config(node.url, maxmemory=0)
