"""A Redis is marked with the layout of the Moments that wrote it: a version reading
another layout refuses to start on it (it would read keys wrong: an erasure or export
missing what the other kept), and a Redis written before marks is named at start."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from feature_store import (
    LAYOUT,
    ApplyStatus,
    DecisionRecord,
    FeatureStore,
    LayoutMismatch,
    SecretMismatch,
    StoreConfig,
    StoreUnavailable,
)
from schemas import WebClick
from streams.app import build_store
from streams.rebuild import rebuild
from streams.rebuild_report import RebuildError, TargetUnreachable
from streams.redis_checks import check_redis_layout, warn_about_redis_setup
from streams.services import LocalRedis, free_port
from streams.services.local_redis import LocalRedisCluster
from streams.settings import Settings, SettingsError
from tests.integration.conftest import Pipeline
from tests.unit.factories import T0

pytestmark = pytest.mark.integration


async def mark(url: str, layout: str) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        await client.set("m:layout", layout)
    finally:
        await client.aclose()


async def test_an_empty_redis_is_marked_and_a_marked_one_passes(
    private_redis: LocalRedis,
) -> None:
    settings = Settings(redis_url=private_redis.url)
    assert await check_redis_layout(settings) == "marked now"
    assert await check_redis_layout(settings) == "marked"
    store = FeatureStore.from_url(private_redis.url, StoreConfig(secret=b"layout"))
    try:
        assert await store.layout.read() == str(LAYOUT)
        await mark(private_redis.url, str(LAYOUT + 1))  # another version got there first
        await store.layout.mark()
        assert await store.layout.read() == str(LAYOUT + 1)  # not taken over: refused
    finally:
        await store.close()


async def test_customers_without_a_mark_are_named_and_left_unmarked(
    private_redis: LocalRedis, caplog: pytest.LogCaptureFixture
) -> None:
    store = FeatureStore.from_url(private_redis.url, StoreConfig(secret=b"layout"))
    try:
        await store.apply([WebClick(event_id="e1", customer_id="c1", ts=T0, page="/")])
        with caplog.at_level(logging.WARNING, logger="streams.redis_checks"):
            found = await check_redis_layout(Settings(redis_url=private_redis.url))
        assert found == "unmarked"
        assert any("no feature-store layout mark" in r.getMessage() for r in caplog.records)
        assert await store.layout.read() is None  # a rebuild marks it, not a start
        # its key secret is taken down all the same: no other may write to it from now
        other = Settings(redis_url=private_redis.url, key_secret="another-secret")
        with pytest.raises(SecretMismatch):
            await check_redis_layout(other)
    finally:
        await store.close()


async def test_a_marked_redis_is_checked_by_reading_alone(private_redis: LocalRedis) -> None:
    """A full Redis, which refuses writes (and scripts that may write), passes the check
    of a Redis that tells both its layout and its key secret; a user that may only read
    does not: it could apply no touchpoint."""
    settings = Settings(redis_url=private_redis.url)
    assert await check_redis_layout(settings) == "marked now"
    admin = aioredis.Redis.from_url(private_redis.url)
    try:
        await admin.execute_command(
            "ACL", "SETUSER", "reader", "on", ">pw", "~*", "+@all", "-@write"
        )
        await admin.config_set("maxmemory", "1")
        await admin.config_set("maxmemory-policy", "noeviction")
        with pytest.raises(Exception, match="maxmemory"):
            await admin.set("m:{c}:p", "x")  # full indeed
        assert await check_redis_layout(settings, within_s=2) == "marked"
        reader = Settings(redis_url=f"redis://reader:pw@127.0.0.1:{private_redis.port}/0")
        with pytest.raises(SettingsError, match="refuses the feature store's user DEL"):
            await check_redis_layout(reader, within_s=2)
    finally:
        await admin.config_set("maxmemory", "0")
        await admin.aclose()


async def test_a_redis_that_cannot_be_reached_is_said_not_to_stop_the_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="streams.redis_checks"):
        found = await check_redis_layout(Settings(redis_url="redis://127.0.0.1:1/0"), within_s=2)
    assert found == "unreachable"
    assert any("could not be checked" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("refusing", "named"),
    [
        (("-get",), "'get' command"),  # the layout check's own read
        (("-@scripting",), "'script|load' command"),  # every write the store makes
        (("-evalsha",), "'evalsha' command"),
        (("-@write",), "HSET, PERSIST, PEXPIRE, SADD, SET"),  # the scripts' calls: 7.0's error
        (("-zadd",), "user ZADD;"),
    ],
)
async def test_a_redis_user_refused_what_the_store_needs_stops_the_start_in_one_line(
    private_redis: LocalRedis, refusing: tuple[str, ...], named: str
) -> None:
    """A user whose ACL refuses a command the store needs started, answered ready, and
    dead-lettered every touchpoint (its scripts refused, as if the events were at
    fault); erasures answered 500. It is a setting to fix: exit 2, naming the command,
    on a Redis marked already too (the layout check then only reads)."""
    admin = aioredis.Redis.from_url(private_redis.url)
    user = f"limited{refusing[0].strip('-@')}"
    try:
        await admin.execute_command("ACL", "SETUSER", user, "on", ">pw", "~*", "&*", "+@all",
                                    *refusing)  # fmt: skip
    finally:
        await admin.aclose()
    assert await check_redis_layout(Settings(redis_url=private_redis.url)) == "marked now"
    limited = Settings(redis_url=f"redis://{user}:pw@127.0.0.1:{private_redis.port}/0")
    with pytest.raises(SettingsError, match="MOMENTS_REDIS_URL: Redis refuses") as refused:
        await check_redis_layout(limited, within_s=2)
    assert named in str(refused.value) and "+@scripting" in str(refused.value)


LEAST = ("+@read", "+@write", "+@keyspace", "+@scripting", "+@connection")  # as the README says


async def test_the_redis_user_the_readme_names_is_enough(private_redis: LocalRedis) -> None:
    admin = aioredis.Redis.from_url(private_redis.url)
    try:
        await admin.execute_command("ACL", "SETUSER", "least", "on", ">pw", "~*", "&*", *LEAST)
    finally:
        await admin.aclose()
    least = Settings(redis_url=f"redis://least:pw@127.0.0.1:{private_redis.port}/0")
    assert await check_redis_layout(least, within_s=5) == "marked now"
    store = build_store(least)  # and what the processes do with it
    try:
        await store.apply([WebClick(event_id="e1", customer_id="c1", ts=T0, page="/p")])
        assert (await store.read("c1")) is not None and (await store.export("c1")).profile
        now_ms = int(time.time() * 1000)
        assert await store.decisions.record([DecisionRecord("c1", "d1", now_ms, b"{}")]) == [True]
        assert await store.models.publish("offers", 0, "{}") == 1
        assert (await store.erase("c1", replicas=1, within_ms=10)).blocked  # EVAL and WAIT
        assert await store.read_for_decisions(["c1"]) == [(True, None)]
    finally:
        await store.close()


async def test_a_redis_database_that_does_not_exist_stops_the_start(
    private_redis: LocalRedis,
) -> None:
    """It left the process running for ever, never ready."""
    missing = Settings(redis_url=f"redis://127.0.0.1:{private_redis.port}/99")
    with pytest.raises(SettingsError, match="MOMENTS_REDIS_URL: Redis has no such database"):
        await check_redis_layout(missing, within_s=2)


async def test_a_redis_database_that_does_not_exist_on_a_unix_socket_stops_the_start(
    tmp_path: Path,
) -> None:
    """Over a unix socket (redis-py's own connection) the refusal came as Redis being
    unreachable: the process started without the check, and asked for ever."""
    socket = tmp_path / "redis.sock"
    redis = LocalRedis(tmp_path / "redis", appendonly=False,
                       extra_args=["--unixsocket", str(socket)])  # fmt: skip
    redis.start()
    try:
        missing = Settings(redis_url=f"unix://{socket}?db=99")
        with pytest.raises(SettingsError, match="MOMENTS_REDIS_URL: Redis has no such database"):
            await check_redis_layout(missing, within_s=2)
        assert await check_redis_layout(Settings(redis_url=f"unix://{socket}?db=3"), 2) in (
            "marked now",
            "marked",
        )
    finally:
        redis.stop()


async def test_another_layout_is_refused_at_start_and_by_a_forced_rebuild(
    pipeline: Pipeline, private_redis: LocalRedis
) -> None:
    await mark(private_redis.url, str(LAYOUT + 1))
    settings = Settings(redis_url=private_redis.url)
    with pytest.raises(LayoutMismatch, match=f"layout {LAYOUT + 1}"):
        await check_redis_layout(settings)
    store = FeatureStore.from_url(private_redis.url, StoreConfig(secret=b"layout"))
    try:
        with pytest.raises(LayoutMismatch):
            await rebuild(settings, store, force=True)
    finally:
        await store.close()
    env = pipeline.env(free_port()) | {
        "MOMENTS_REDIS_URL": private_redis.url,
        "MOMENTS_REDIS_PREFIX": "m",
        "MOMENTS_API_PORT": str(free_port()),
    }
    for command in ("api", "worker"):
        started = subprocess.run(  # noqa: ASYNC221 (the test waits for it on purpose)
            [sys.executable, "-m", "streams.cli", command],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert started.returncode == 2, (command, started.stderr[-2000:])
        assert f"Redis holds feature-store layout {LAYOUT + 1}" in started.stderr, command
    client = aioredis.Redis.from_url(private_redis.url, decode_responses=True)
    try:
        assert [k async for k in client.scan_iter()] == ["m:layout"]  # nothing written
    finally:
        await client.aclose()


async def test_a_redis_written_with_another_key_secret_is_refused_at_start(
    pipeline: Pipeline, private_redis: LocalRedis
) -> None:
    """Keys and erasure blocks are named by the secret's keyed hash: under another
    secret an erased customer would come back and an erasure miss their keys."""
    first = Settings(redis_url=private_redis.url, key_secret="first-secret")
    second = Settings(redis_url=private_redis.url, key_secret="second-secret")
    assert await check_redis_layout(first) == "marked now"
    with pytest.raises(SecretMismatch, match="another MOMENTS_KEY_SECRET"):
        await check_redis_layout(second)
    assert await check_redis_layout(first) == "marked"
    client = aioredis.Redis.from_url(private_redis.url, decode_responses=True)
    try:  # marked before secrets were: the first process to check marks it with its own
        assert await client.delete("m:key-secret") == 1
        assert await check_redis_layout(second) == "marked"
        with pytest.raises(SecretMismatch):
            await check_redis_layout(first)
        assert "second-secret" not in str(await client.get("m:key-secret"))
    finally:
        await client.aclose()
    env = pipeline.env(free_port()) | {
        "MOMENTS_REDIS_URL": private_redis.url,
        "MOMENTS_REDIS_PREFIX": "m",
        "MOMENTS_API_PORT": str(free_port()),
    }
    started = subprocess.run(  # noqa: ASYNC221 (the test waits for it on purpose)
        [sys.executable, "-m", "streams.cli", "api"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert started.returncode == 2, started.stderr[-2000:]
    assert "another MOMENTS_KEY_SECRET" in started.stderr


async def test_a_redis_that_comes_up_during_the_check_is_checked(tmp_path: Path) -> None:
    """A worker started before Redis waits for it: a Redis of another layout that comes
    up within the check's time is refused, not written to in this version's layout."""
    late = LocalRedis(tmp_path / "late")
    late.start()
    try:
        await mark(late.url, str(LAYOUT + 1))  # kept in its append-only file
    finally:
        late.stop()
    settings = Settings(redis_url=late.url)
    checking = asyncio.create_task(check_redis_layout(settings, within_s=60))
    await asyncio.sleep(2.5)
    assert not checking.done()  # still asking: a refused connection is not the answer
    await asyncio.to_thread(late.start)
    try:
        with pytest.raises(LayoutMismatch, match=f"layout {LAYOUT + 1}"):
            await asyncio.wait_for(checking, 30)
    finally:
        late.stop()


async def test_processes_started_before_redis_check_it_once_it_answers(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """A worker (after MOMENTS_REDIS_START_WAIT_S, a minute by default: 5 s here) and an
    API (after 5 s) start without the check while Redis cannot be reached; once it
    answers, holding keys named with another key secret, both stop (exit 2, saying why)
    rather than write with theirs."""
    late = LocalRedis(tmp_path / "late")
    late.start()
    try:
        client = aioredis.Redis.from_url(late.url)
        await client.set("m:layout", str(LAYOUT))
        await client.set("m:key-secret", "written-by-another-secret")  # kept in its AOF
        await client.aclose()
    finally:
        late.stop()
    env = pipeline.env(free_port()) | {"MOMENTS_REDIS_URL": late.url, "MOMENTS_REDIS_PREFIX": "m",
                                       "MOMENTS_REDIS_START_WAIT_S": "5"}  # fmt: skip
    logs = {name: tmp_path / f"{name}.log" for name in ("api", "worker")}
    processes = {
        name: subprocess.Popen(  # noqa: ASYNC220 (waited for below, without blocking)
            [sys.executable, "-m", "streams.cli", name],
            env=env | {"MOMENTS_API_PORT": str(free_port())},
            stdout=subprocess.DEVNULL, stderr=logs[name].open("w"),
        )
        for name in ("api", "worker")
    }  # fmt: skip
    try:
        for name, log in logs.items():  # both started without the check
            for _ in range(150):
                if "starting without the check" in log.read_text():
                    break
                assert processes[name].poll() is None, log.read_text()[-2000:]
                await asyncio.sleep(0.5)
            else:
                raise AssertionError(f"{name} did not start: {log.read_text()[-2000:]}")
        await asyncio.to_thread(late.start)
        for name, process in processes.items():
            code = await asyncio.to_thread(process.wait, 60)
            said = logs[name].read_text()
            assert code == 2, (name, said[-2000:])
            assert "another MOMENTS_KEY_SECRET" in said, (name, said[-2000:])
        client = aioredis.Redis.from_url(late.url, decode_responses=True)
        try:  # nothing was written with the wrong secret
            assert sorted([k async for k in client.scan_iter()]) == ["m:key-secret", "m:layout"]
        finally:
            await client.aclose()
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
        late.stop()


async def test_a_redis_that_refuses_the_password_stops_the_start_in_one_line(
    private_redis: LocalRedis,
) -> None:
    """A wrong password does not pass: the process would start without the check and
    retry every batch for ever; it is a setting to fix (exit 2), the password unsaid."""
    admin = aioredis.Redis.from_url(private_redis.url)
    try:
        await admin.execute_command("ACL", "SETUSER", "alice", "on", ">right", "~*", "+@all")
    finally:
        await admin.aclose()
    wrong = Settings(redis_url=f"redis://alice:not-hers@127.0.0.1:{private_redis.port}/0")
    started = time.monotonic()
    with pytest.raises(SettingsError, match="MOMENTS_REDIS_URL: Redis refused") as refused:
        await check_redis_layout(wrong, within_s=60)
    assert time.monotonic() - started < 10  # not the minute a Redis on its way gets
    assert "not-hers" not in str(refused.value)
    right = Settings(redis_url=f"redis://alice:right@127.0.0.1:{private_redis.port}/0")
    assert await check_redis_layout(right) == "marked now"


async def test_a_refused_password_is_said_before_any_warning_of_the_setup(
    private_redis: LocalRedis, caplog: pytest.LogCaptureFixture
) -> None:
    """The start warned that Redis's version, append-only file and eviction policy could
    not be read ("Moments needs Redis 7 or later") before it said the login was refused."""
    admin = aioredis.Redis.from_url(private_redis.url)
    try:
        await admin.execute_command("ACL", "SETUSER", "bob", "on", ">right", "~*", "+@all")
    finally:
        await admin.aclose()
    port = private_redis.port
    wrong = Settings(redis_url=f"redis://bob:WrongSecret@127.0.0.1:{port}/0")
    with pytest.raises(SettingsError, match="MOMENTS_REDIS_URL: Redis refused its user and"):
        await warn_about_redis_setup(wrong)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    right = Settings(redis_url=f"redis://bob:right@127.0.0.1:{port}/0")
    assert (await warn_about_redis_setup(right)).version is not None


async def test_a_redis_that_asks_for_a_password_the_url_lacks_says_so(
    private_redis: LocalRedis,
) -> None:
    """It said Redis refused "its user and password", though the URL gave none."""
    admin = aioredis.Redis.from_url(private_redis.url)
    try:
        await admin.config_set("requirepass", "wanted")
    finally:
        await admin.aclose()
    with pytest.raises(SettingsError, match="without a password, which the URL does not give"):
        await check_redis_layout(Settings(redis_url=private_redis.url), within_s=5)
    given = Settings(redis_url=f"redis://:wrong@127.0.0.1:{private_redis.port}/0")
    with pytest.raises(SettingsError, match="refused its user and password"):
        await check_redis_layout(given, within_s=5)


async def test_a_password_redis_does_not_have_stops_the_start(private_redis: LocalRedis) -> None:
    """Redis has no password and the URL gives one: redis-py let it pass, the store's own
    connection was refused it at every login, and the worker answered ready while it
    retried every batch for ever (the API fell back on every recommendation)."""
    given = Settings(redis_url=f"redis://:not-needed@127.0.0.1:{private_redis.port}/0")
    with pytest.raises(SettingsError, match="called without any password configured"):
        await check_redis_layout(given, within_s=5)


@pytest.mark.parametrize(
    ("url_of", "said"),
    [
        (lambda port: f"redis://:not-needed@127.0.0.1:{port}/0", "without any password"),
        (lambda port: f"redis://127.0.0.1:{port}/99", "DB index is out of range"),
        (lambda port: f"redis://limitedw:pw@127.0.0.1:{port}/0", "HSET"),
        (lambda port: f"redis://limitedw:wrong@127.0.0.1:{port}/0", "refuses the login"),
    ],
)
async def test_a_rebuild_into_a_redis_that_refuses_it_stops_at_once(
    private_redis: LocalRedis, url_of: Any, said: str
) -> None:
    """It said Redis became unavailable, to be run again with --force (exit 3), for ever;
    a database Redis does not have ended in a traceback. None of these is an outage to
    wait out (TargetUnreachable: exit 3): a login refused was taken for one."""
    admin = aioredis.Redis.from_url(private_redis.url)
    try:
        await admin.execute_command("ACL", "SETUSER", "limitedw", "on", ">pw", "~*", "&*",
                                    "+@all", "-@write")  # fmt: skip
    finally:
        await admin.aclose()
    target = FeatureStore.from_url(url_of(private_redis.port), StoreConfig(secret=b"s"))
    try:
        with pytest.raises(RebuildError, match=said) as refused:
            await rebuild(Settings(), target)
        assert not isinstance(refused.value, TargetUnreachable)
    finally:
        await target.close()


async def test_a_command_the_scripts_call_renamed_away_stops_the_start(tmp_path: Path) -> None:
    """HINCRBY renamed away: the probe's check of it raised, the start check said it
    could not check and went on, and every touchpoint was then dead-lettered."""
    server = LocalRedis(tmp_path / "redis", extra_args=["--rename-command", "HINCRBY", ""])
    server.start()
    try:
        with pytest.raises(SettingsError, match="refuses the feature store's user HINCRBY;"):
            await check_redis_layout(Settings(redis_url=server.url), within_s=5)
    finally:
        server.stop()


async def test_a_redis_cluster_that_refuses_the_login_stops_the_start_and_the_rebuild(
    tmp_path: Path,
) -> None:
    """redis-py wraps a cluster's refused login in its own "cannot be connected" error:
    it was taken for an outage, the start went on with a warning, and `moments rebuild`
    said to run it again once Redis answers (exit 3), for ever."""
    cluster = LocalRedisCluster(tmp_path / "cluster")
    cluster.start()
    try:
        for node in cluster.nodes:
            admin = aioredis.Redis.from_url(node.url)
            try:
                await admin.config_set("requirepass", "wanted")
            finally:
                await admin.aclose()
        wrong = cluster.url.replace("redis://", "redis://:wrong@").rsplit("/", 1)[0]
        with pytest.raises(SettingsError, match="refused its user and password"):
            await check_redis_layout(Settings(redis_url=wrong, redis_cluster=True), within_s=5)
        target = FeatureStore.from_url(wrong, StoreConfig(secret=b"s"), cluster=True)
        try:
            with pytest.raises(RebuildError, match="refuses the login") as refused:
                await rebuild(Settings(), target)
            assert not isinstance(refused.value, TargetUnreachable)
        finally:
            await target.close()
    finally:
        cluster.stop()


@pytest.mark.parametrize("command", ["worker", "api"])
def test_a_process_stopped_while_it_waits_for_redis_at_start_ends_as_on_ctrl_c(
    pipeline: Pipeline, command: str
) -> None:
    """SIGTERM before the process's own handlers took it over (an orchestrator's stop
    while Redis is away at start) ended it at once: exit 143, and not a word."""
    silent = socket.socket()  # a Redis that accepts and never answers: the start waits
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    env = pipeline.env(free_port()) | {
        "MOMENTS_REDIS_URL": f"redis://127.0.0.1:{silent.getsockname()[1]}/0",
        "MOMENTS_API_PORT": str(free_port()),
        "MOMENTS_LOG_LEVEL": "info",
    }
    proc = subprocess.Popen([sys.executable, "-m", "streams.cli", command], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        silent.settimeout(60)
        connection, _ = silent.accept()  # it is asking Redis
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        connection.close()
    finally:
        silent.close()
        if proc.poll() is None:
            proc.kill()
    said = out + err  # (its log goes to standard output)
    assert proc.returncode == 130, said[-2000:]
    assert b"Traceback" not in said, said[-2000:]
    assert f"Moments {command} stopped while it started".encode() in said, said[-2000:]


async def test_an_event_retried_through_a_command_refused_mid_script_counts_once(
    private_redis: LocalRedis,
) -> None:
    """An ACL changed while the workers run refused a command part-way through the
    script applying a touchpoint; Redis kept what it had written, and each retry of the
    batch while the refusal lasted counted the event again (with nothing said)."""
    store = FeatureStore.from_url(private_redis.url, StoreConfig(b"s", "rp"))
    admin = aioredis.Redis.from_url(private_redis.url)
    try:
        click = WebClick(event_id="e1", customer_id="ana", ts=datetime.now(UTC), page="/",
                         category="books")  # fmt: skip
        await admin.execute_command("ACL", "SETUSER", "default", "-zadd")
        for _ in range(3):  # the worker's retries while the refusal lasts
            with pytest.raises(StoreUnavailable):
                await store.apply([click])
        await admin.execute_command("ACL", "SETUSER", "default", "+@all")
        assert await store.apply([click]) == [ApplyStatus.APPLIED]
        ana = await store.read("ana")
        assert ana is not None
        assert ana.events == 1, f"one event, counted {ana.events} times"
    finally:
        await admin.execute_command("ACL", "SETUSER", "default", "+@all")
        await admin.aclose()
        await store.close()
