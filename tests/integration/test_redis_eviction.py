"""A Redis that may evict keys when full is named at start: an erasure's block, a consent
withdrawal or a dedupe mark evicted would bring an erased customer back, contact one who
withdrew, or count an event twice."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis.asyncio as aioredis

from streams import redis_checks
from streams.redis_checks import warn_about_redis_setup
from streams.services import LocalRedis
from streams.services.local_redis import LocalRedisCluster
from streams.settings import Settings

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(("policy", "warned"), [("allkeys-lru", True),
                                                ("volatile-ttl", True),
                                                ("noeviction", False)])  # fmt: skip
async def test_a_redis_that_may_evict_keys_is_warned_of_at_start(
    private_redis: LocalRedis, caplog: pytest.LogCaptureFixture, policy: str, warned: bool
) -> None:
    admin = aioredis.Redis.from_url(private_redis.url)
    try:
        await admin.config_set("maxmemory-policy", policy)
    finally:
        await admin.aclose()
    with caplog.at_level(logging.WARNING, logger="streams.redis_checks"):
        found = (
            await warn_about_redis_setup(Settings(redis_url=private_redis.url))
        ).eviction_policy
    assert found == policy
    said = [r.getMessage() for r in caplog.records if "maxmemory-policy" in r.getMessage()]
    assert bool(said) is warned and all(policy in s for s in said)


async def test_a_redis_that_refuses_config_is_read_from_info(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Managed Redis services refuse CONFIG (and often evict by default): the policy
    went unread there, and nothing was said."""
    managed = LocalRedis(tmp_path / "managed", appendonly=False, extra_args=[
        "--rename-command", "CONFIG", "", "--maxmemory-policy", "volatile-lru"])  # fmt: skip
    managed.start()
    try:
        with caplog.at_level(logging.WARNING, logger="streams.redis_checks"):
            assert (
                await warn_about_redis_setup(Settings(redis_url=managed.url))
            ).eviction_policy == "volatile-lru"
    finally:
        managed.stop()
    assert any("volatile-lru" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("cluster", [False, True])
async def test_a_redis_that_cannot_be_reached_does_not_stop_the_start(
    cluster: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """redis-py's cluster client fails with an error of its own (not a RedisError)."""
    unreachable = Settings(redis_url="redis://127.0.0.1:1/0", redis_cluster=cluster)
    with caplog.at_level(logging.WARNING, logger="streams.redis_checks"):
        assert (await warn_about_redis_setup(unreachable)).eviction_policy is None
    assert any("could not read Redis's maxmemory-policy" in r.getMessage() for r in caplog.records)


async def test_one_node_of_a_cluster_that_may_evict_is_named(
    cluster: LocalRedisCluster, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(redis_url=cluster.url, redis_cluster=True)
    assert (await warn_about_redis_setup(settings)).eviction_policy == "noeviction"
    node = aioredis.Redis.from_url(cluster.nodes[-1].url)
    try:
        await node.config_set("maxmemory-policy", "allkeys-lru")
        with caplog.at_level(logging.WARNING, logger="streams.redis_checks"):
            assert (await warn_about_redis_setup(settings)).eviction_policy == "allkeys-lru"
        assert any("allkeys-lru" in r.getMessage() for r in caplog.records)
    finally:
        await node.config_set("maxmemory-policy", "noeviction")
        await node.aclose()


async def test_the_redis_version_is_read_at_start(
    private_redis: LocalRedis, cluster: LocalRedisCluster, caplog: pytest.LogCaptureFixture
) -> None:
    for settings in (Settings(redis_url=private_redis.url),
                     Settings(redis_url=cluster.url, redis_cluster=True)):  # fmt: skip
        with caplog.at_level(logging.WARNING, logger="streams.redis_checks"):
            found = (await warn_about_redis_setup(settings)).version
        assert found is not None and int(found.split(".")[0]) >= 7
    assert not [r for r in caplog.records if "version" in r.getMessage()]
    for on_cluster in (False, True):
        unreachable = Settings(redis_url="redis://127.0.0.1:1/0", redis_cluster=on_cluster)
        with caplog.at_level(logging.WARNING, logger="streams.redis_checks"):
            assert (await warn_about_redis_setup(unreachable)).version is None
    said = [r.getMessage() for r in caplog.records if "version" in r.getMessage()]
    assert len(said) == 2 and all("could not read Redis's version" in s for s in said)


async def test_a_redis_older_than_7_is_said_at_start(caplog: pytest.LogCaptureFixture) -> None:
    """Redis 6 reports an outage met inside a script as the script's error: touchpoints
    were dead-lettered rather than waited for, and nothing said why."""

    class Six:
        server = SimpleNamespace(oldest_version=lambda: asyncio.sleep(0, (6, 2, 14)))

    with caplog.at_level(logging.WARNING, logger="streams.redis_checks"):
        assert await redis_checks.warn_if_redis_is_old(Six()) == "6.2.14"  # type: ignore[arg-type]
    (said,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "Redis 6.2.14 is older than 7.0" in said.getMessage()
