"""A Redis that forgets: without an append-only file, a restart takes it back to its last
snapshot (or empty), and the erasures, consent withdrawals and applied events since are
gone. The processes say so at start, keep ``moments_redis_forgetful`` for an alert, and
notice a restart that lost the store's data (its layout mark gone): an error, a count,
and the mark put back. They noticed nothing, and the next start blamed an old version."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from schemas import WebClick
from streams.app import build_store
from streams.metrics import Metrics
from streams.redis_checks import check_redis_layout, warn_about_redis_setup
from streams.redis_restarts import RedisRestartWatch
from streams.services import LocalRedis, Services
from streams.services.local_redis import LocalRedisCluster
from streams.settings import Settings
from tests.unit.factories import T0

pytestmark = pytest.mark.integration


async def after_restart(watch: RedisRestartWatch, within_s: float = 15.0) -> str | None:
    """The watch's reading once it reaches Redis again (the first call after a restart
    may meet a connection the old server closed, a cluster may still be forming: no
    reading, asked again next time)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        found = await watch.check()
        if found is not None:
            return found
        await asyncio.sleep(0.2)
    return None


async def test_a_redis_without_an_append_only_file_is_said_at_start(
    private_redis: LocalRedis, kafka_redis: Services, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="streams.redis_checks"):
        assert (
            await warn_about_redis_setup(Settings(redis_url=private_redis.url))
        ).append_only is False
        assert any("no append-only file" in r.getMessage() for r in caplog.records)
        caplog.clear()
        assert (
            await warn_about_redis_setup(Settings(redis_url=kafka_redis.redis_url))
        ).append_only is True
        assert not caplog.records


@pytest.mark.parametrize("append_only", [False, True])
async def test_a_restart_is_noticed_and_what_it_lost_said(
    tmp_path: Path, append_only: bool, caplog: pytest.LogCaptureFixture
) -> None:
    server = LocalRedis(tmp_path / "redis", appendonly=append_only)
    server.start()
    settings = Settings(redis_url=server.url)
    store, metrics = build_store(settings), Metrics()
    watch = RedisRestartWatch(store, metrics)
    admin = aioredis.Redis.from_url(server.url)
    try:
        assert await check_redis_layout(settings) == "marked now"
        assert await watch.check() is None  # the first reading: nothing to compare
        assert metrics.redis_forgetful._value.get() == (0 if append_only else 1)
        assert await watch.check() is None  # no restart
        await admin.set("m:{c1}:p", "a customer's key")
        server.stop()
        server.start()  # empty without its append-only file (and no snapshots: --save "")
        await admin.aclose()
        admin = aioredis.Redis.from_url(server.url)  # the old server closed its connection
        with caplog.at_level(logging.INFO, logger="streams.redis_restarts"):
            found = await after_restart(watch)
        if append_only:
            assert found == "kept" and await admin.exists("m:{c1}:p")
            assert metrics.redis_data_lost._value.get() == 0
        else:
            assert found == "lost" and metrics.redis_data_lost._value.get() == 1
            assert any(r.levelno == logging.ERROR and "without the data Moments wrote" in
                       r.getMessage() for r in caplog.records)  # fmt: skip
            assert await admin.get("m:layout") is not None  # marked again: the next start
            assert await check_redis_layout(settings) == "marked"  # does not blame a version
        assert await watch.check() is None  # said once
    finally:
        await admin.aclose()
        await store.close()
        server.stop()


async def test_a_restart_from_an_older_snapshot_is_said_to_have_forgotten(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """RDB snapshots only (redis.conf's default): the mark survives in the snapshot, but
    what came after it is gone."""
    server = LocalRedis(tmp_path / "redis", appendonly=False, extra_args=["--save", "3600 1"])
    server.start()
    settings = Settings(redis_url=server.url)
    store, metrics = build_store(settings), Metrics()
    watch = RedisRestartWatch(store, metrics)
    admin = aioredis.Redis.from_url(server.url)
    try:
        assert await check_redis_layout(settings) == "marked now"
        await admin.save()  # the snapshot holds the mark
        await admin.set("m:{c1}:tombstone", "1")  # an erasure after it
        assert await watch.check() is None
        server.kill()
        server.start()
        await admin.aclose()
        admin = aioredis.Redis.from_url(server.url)
        with caplog.at_level(logging.WARNING, logger="streams.redis_restarts"):
            assert await after_restart(watch) == "forgotten"
        assert any("keeps no append-only file" in r.getMessage() for r in caplog.records)
        assert not await admin.exists("m:{c1}:tombstone")  # what the warning is about
    finally:
        await admin.aclose()
        await store.close()
        server.stop()


async def test_an_unmarked_redis_restarted_with_its_data_is_no_loss(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Customers written before marks: the start check leaves it unmarked. A restart that
    kept everything was taken for a lost mark (a critical alert, rebuild advised), and
    the watch marked it with this version's layout."""
    server = LocalRedis(tmp_path / "redis", appendonly=True)
    server.start()
    settings = Settings(redis_url=server.url)
    admin = aioredis.Redis.from_url(server.url)
    await admin.set("m:{c1}:p", "a customer's key, from before marks")
    store, metrics = build_store(settings), Metrics()
    watch = RedisRestartWatch(store, metrics)
    try:
        assert await check_redis_layout(settings) == "unmarked"
        assert await watch.check() is None
        server.stop()
        server.start()
        with caplog.at_level(logging.INFO, logger="streams.redis_restarts"):
            assert await after_restart(watch) == "kept"
        assert metrics.redis_data_lost._value.get() == 0
        await admin.aclose()
        admin = aioredis.Redis.from_url(server.url)
        assert await admin.get("m:layout") is None  # left as the start check left it
    finally:
        await admin.aclose()
        await store.close()
        server.stop()


async def test_a_cluster_node_that_comes_back_empty_is_a_loss(tmp_path: Path) -> None:
    """The layout mark is on one node: another node restarted empty (a third of the
    customers, tombstones among them) was only 'forgotten', and no alert fired."""
    cluster = LocalRedisCluster(tmp_path / "cluster")
    cluster.start()
    settings = Settings(redis_url=cluster.url, redis_cluster=True)
    store, metrics = build_store(settings), Metrics()
    watch = RedisRestartWatch(store, metrics)
    try:
        assert await check_redis_layout(settings) == "marked now"
        customers = [f"c{i}" for i in range(60)]
        await store.apply([WebClick(event_id=f"e-{c}", customer_id=c, ts=T0, page="/")
                           for c in customers])  # fmt: skip
        assert await watch.check() is None
        admin = await aioredis.RedisCluster.from_url(cluster.url).initialize()
        mark_node = admin.get_node_from_key("m:layout").port
        await admin.aclose()
        emptied = next(n for n in cluster.nodes if n.port != mark_node)
        emptied.stop()
        emptied.start()  # no append-only file: empty, owning its slots again
        assert await after_restart(watch, within_s=30) == "lost"
        assert metrics.redis_data_lost._value.get() == 1
    finally:
        await store.close()
        cluster.stop()


async def restart_empty(server: LocalRedis, workdir: Path) -> LocalRedis:
    """Redis killed, and an empty one (an append-only file on) started on its port: a
    lost volume, a pod rescheduled without its disk."""
    server.kill()
    empty = LocalRedis(workdir, port=server.port, appendonly=True)
    empty.start()
    return empty


@pytest.mark.parametrize("restarted_again", [False, True])
async def test_every_process_says_a_restart_that_lost_the_data(
    tmp_path: Path, restarted_again: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Three processes on one Redis that comes back empty. The first to read it found the
    mark gone and put it back; the others, reading later, found the mark there and keys
    written since, and logged that the append-only file kept everything: one count, one
    error, and an all-clear from every other process. Redis restarted once more (keeping
    its file) before they read changes nothing."""
    server = LocalRedis(tmp_path / "redis", appendonly=True)
    server.start()
    settings = Settings(redis_url=server.url)
    stores = [build_store(settings) for _ in range(3)]
    metrics = [Metrics() for _ in stores]
    watches = [RedisRestartWatch(s, m) for s, m in zip(stores, metrics, strict=True)]
    admin = aioredis.Redis.from_url(server.url)
    try:
        assert await check_redis_layout(settings) == "marked now"
        assert [await w.check() for w in watches] == [None] * 3
        await admin.set("m:{c1}:tombstone", "an erasure")
        server = await restart_empty(server, tmp_path / "empty")
        await admin.aclose()
        admin = aioredis.Redis.from_url(server.url)
        with caplog.at_level(logging.INFO, logger="streams.redis_restarts"):
            assert await after_restart(watches[0]) == "lost"  # the first: the mark is gone
            await admin.set("m:{c2}:p", "written since by a worker")
            if restarted_again:
                server.stop()
                server.start()  # keeps its file: the mark put back, the key since
                await admin.aclose()
                admin = aioredis.Redis.from_url(server.url)
            assert [await after_restart(w) for w in watches[1:]] == ["lost", "lost"]
            if restarted_again:
                assert await after_restart(watches[0]) == "kept"  # it told its loss before
        assert [m.redis_data_lost._value.get() for m in metrics] == [1, 1, 1]
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 3 and all("without the data" in r.getMessage() for r in errors)
        kept = [r for r in caplog.records if "kept what Moments wrote" in r.getMessage()]
        assert len(kept) == (1 if restarted_again else 0)  # the first's second restart
        assert [await w.check() for w in watches] == [None] * 3  # each said it once
        later = RedisRestartWatch(stores[0], Metrics())  # a process started after the mark
        assert [await later.check(), await later.check()] == [None, None]  # was put back:
        # it cannot know
    finally:
        await admin.aclose()
        for store in stores:
            await store.close()
        server.stop()


async def test_no_process_says_a_loss_when_the_append_only_file_kept_the_data(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = LocalRedis(tmp_path / "redis", appendonly=True)
    server.start()
    settings = Settings(redis_url=server.url)
    stores = [build_store(settings) for _ in range(3)]
    metrics = [Metrics() for _ in stores]
    watches = [RedisRestartWatch(s, m) for s, m in zip(stores, metrics, strict=True)]
    admin = aioredis.Redis.from_url(server.url)
    try:
        assert await check_redis_layout(settings) == "marked now"
        assert [await w.check() for w in watches] == [None] * 3
        await admin.set("m:{c1}:tombstone", "an erasure")
        await asyncio.sleep(1.5)  # appendfsync everysec: written out before the kill
        server.kill()
        server.start()
        await admin.aclose()
        admin = aioredis.Redis.from_url(server.url)
        with caplog.at_level(logging.INFO, logger="streams.redis_restarts"):
            assert [await after_restart(w) for w in watches] == ["kept"] * 3
        assert await admin.exists("m:{c1}:tombstone")
        assert [m.redis_data_lost._value.get() for m in metrics] == [0, 0, 0]
        assert not any(r.levelno >= logging.WARNING for r in caplog.records)
    finally:
        await admin.aclose()
        for store in stores:
            await store.close()
        server.stop()
