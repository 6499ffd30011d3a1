"""How the store's own Redis connection is made: a full server's refusal is an outage,
not a caller's reply; callers waiting for one connection attempt share its failure.

The servers here are TCP listeners that behave as Redis does at those moments (a full
one says so and hangs up; a stalled one accepts and never answers). Real Redis is in
``tests/integration``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from feature_store import StoreUnavailable
from feature_store.connection import StoreConnection
from feature_store.transport import RedisPipe

Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def listening(serve: Serve) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def full(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Redis at maxclients: an error line as soon as it accepts, then it hangs up."""
    writer.write(b"-ERR max number of clients reached\r\n")
    await writer.drain()
    writer.close()


async def stalled(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accepts, reads, never answers (a server stuck before its handshake)."""
    while await reader.read(65536):
        pass
    writer.close()


async def test_a_full_server_is_an_outage_for_a_single_command() -> None:
    server, port = await listening(full)
    pipe = RedisPipe(f"redis://127.0.0.1:{port}")
    try:
        with pytest.raises(RedisConnectionError, match="max number of clients"):
            await asyncio.wait_for(pipe.execute([("EXISTS", "k")]), 5)
        conn = StoreConnection(None, pipe)  # type: ignore[arg-type]  # only the pipe is used
        with pytest.raises(StoreUnavailable):
            await asyncio.wait_for(conn.submit([("EXISTS", "k")]), 5)
    finally:
        await pipe.close()
        server.close()


async def test_callers_waiting_for_a_connection_share_its_failure() -> None:
    callers = 8
    server, port = await listening(stalled)
    pipe = RedisPipe(f"redis://127.0.0.1:{port}", connect_timeout_s=0.3)
    started = time.monotonic()
    try:
        outcomes = await asyncio.wait_for(asyncio.gather(
            *(pipe.execute([("PING",)]) for _ in range(callers)), return_exceptions=True,
        ), 10)  # fmt: skip
    finally:
        await pipe.close()
        server.close()
    took = time.monotonic() - started
    assert all(isinstance(o, RedisConnectionError) for o in outcomes), outcomes
    assert took < 1.5, took  # one attempt's timeout (0.3 s), not one per caller (2.4 s)


async def test_a_caller_that_gives_up_does_not_end_the_attempt_for_the_others() -> None:
    accepted = asyncio.Event()

    async def slow_pong(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        while data := await reader.read(65536):
            await asyncio.sleep(0.1)  # a slow handshake
            writer.write(b"+PONG\r\n" * data.count(b"PING"))
            await writer.drain()
        writer.close()

    server, port = await listening(slow_pong)
    pipe = RedisPipe(f"redis://127.0.0.1:{port}")
    try:
        impatient = asyncio.create_task(pipe.execute([("PING",)]))
        patient = asyncio.create_task(pipe.execute([("PING",)]))
        await accepted.wait()
        impatient.cancel()
        assert await asyncio.wait_for(patient, 5) == ["PONG"]
    finally:
        await pipe.close()
        server.close()
