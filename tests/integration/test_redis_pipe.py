"""The feature store's Redis connection on a real server: pipelining for many callers,
errors in place, ACL users and databases from the URL, and reconnecting."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from feature_store.transport import RedisPipe
from streams.services import Services

pytestmark = pytest.mark.integration


@pytest.fixture
async def pipe(kafka_redis: Services) -> AsyncIterator[RedisPipe]:
    found = RedisPipe(kafka_redis.redis_url)
    try:
        yield found
    finally:
        await found.close()


def _key(what: str) -> str:
    return f"pipe{uuid.uuid4().hex[:10]}:{what}"


async def test_callers_of_one_turn_share_one_write_and_get_their_own_replies(
    pipe: RedisPipe,
) -> None:
    await pipe.execute([("PING",)])  # connected
    keys = [_key(str(i)) for i in range(50)]
    before = pipe.writes

    async def set_then_get(i: int) -> list[object]:
        return await pipe.execute([("SET", keys[i], i), ("INCR", keys[i]), ("GET", keys[i])])

    replies = await asyncio.gather(*(set_then_get(i) for i in range(50)))
    assert replies == [["OK", i + 1, str(i + 1)] for i in range(50)]
    assert pipe.writes - before == 1
    assert await pipe.execute([]) == []


async def test_error_replies_come_back_in_place(pipe: RedisPipe) -> None:
    key = _key("list")
    replies = await pipe.execute([
        ("RPUSH", key, "a"),
        ("INCR", key),  # wrong type
        ("EVALSHA", "0" * 40, 0),  # no such script
        ("HGETALL", key + ":none"),
        ("LRANGE", key, 0, -1),
    ])  # fmt: skip
    assert replies[0] == 1
    assert isinstance(replies[1], ResponseError) and "WRONGTYPE" in str(replies[1])
    assert isinstance(replies[2], NoScriptError)
    assert replies[3] == []
    assert replies[4] == ["a"]


async def test_a_caller_that_gives_up_does_not_shift_the_replies(pipe: RedisPipe) -> None:
    key = _key("n")
    await pipe.execute([("PING",)])  # connected: commands go out as they are sent
    slow = asyncio.ensure_future(pipe.execute([("INCR", key), ("INCR", key)]))
    fast = asyncio.ensure_future(pipe.execute([("INCR", key)]))
    await asyncio.sleep(0)
    slow.cancel()
    assert await fast == [3]
    assert await pipe.execute([("GET", key)]) == ["3"]


async def test_user_password_and_database_come_from_the_url(kafka_redis: Services) -> None:
    admin = aioredis.Redis.from_url(kafka_redis.redis_url, decode_responses=True)
    user, password = f"moments{uuid.uuid4().hex[:8]}", "s@cret/pass"
    await admin.acl_setuser(user, enabled=True, passwords=[f"+{password}"], keys=["pipe*"],
                            commands=["+@all"])  # fmt: skip
    host_port = kafka_redis.redis_url.split("//", 1)[1].split("/", 1)[0]
    url = f"redis://{user}:{password.replace('@', '%40').replace('/', '%2F')}@{host_port}/3"
    key = _key("db")
    pipe = RedisPipe(url)
    try:
        assert await pipe.execute([("SET", key, "in three")]) == ["OK"]
        db3 = aioredis.Redis.from_url(kafka_redis.redis_url.rsplit("/", 1)[0] + "/3")
        assert await db3.get(key) == b"in three"
        assert await admin.get(key) is None  # not in database 0
        await db3.delete(key)
        await db3.aclose()
        wrong = RedisPipe(url.replace("%40", "X"))
        with pytest.raises(RedisConnectionError, match="refused the handshake"):
            await wrong.execute([("PING",)])
    finally:
        await pipe.close()
        await admin.acl_deluser(user)
        await admin.aclose()


async def test_a_lost_connection_fails_the_calls_in_flight_and_the_next_call_reconnects(
    pipe: RedisPipe, kafka_redis: Services
) -> None:
    (client_id,) = await pipe.execute([("CLIENT", "ID")])
    admin = aioredis.Redis.from_url(kafka_redis.redis_url, decode_responses=True)
    try:
        blocked = asyncio.ensure_future(pipe.execute([("BLPOP", _key("never"), 10)]))
        await asyncio.sleep(0.2)
        assert await admin.execute_command("CLIENT", "KILL", "ID", client_id) == 1
        with pytest.raises(RedisConnectionError, match="lost"):
            await blocked
        assert await pipe.execute([("PING",)]) == ["PONG"]
    finally:
        await admin.aclose()


def test_the_connection_works_on_uvloop(kafka_redis: Services) -> None:
    """uvloop's transports are not asyncio.Transport subclasses; the API runs on them."""
    import uvloop

    async def round_trip() -> list[object]:
        found = RedisPipe(kafka_redis.redis_url)
        try:
            key = _key("uv")
            return await found.execute([("SET", key, "x"), ("GET", key), ("DEL", key)])
        finally:
            await found.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(round_trip()) == ["OK", "x", 1]
