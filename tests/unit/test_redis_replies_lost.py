"""A connection lost part way through a call's replies: the commands whose replies came
ran, and the store says so (the worker then counts those facts as applied by its batch,
not as duplicates when it retries).

The "server" is a TCP listener that answers the handshake's PING, then answers the first
two commands of the next call and closes the connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from feature_store import RepliesUnknown, StoreUnavailable
from feature_store.connection import StoreConnection
from feature_store.transport import RedisPipe, RepliesLost


async def _cut_after_two(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(65536)  # the handshake
    writer.write(b"+PONG\r\n")
    await reader.read(65536)  # the call
    writer.write(b":1\r\n:0\r\n")  # two of its replies; then the connection goes
    await writer.drain()
    writer.close()


@pytest_asyncio.fixture(loop_scope="function")
async def port() -> AsyncIterator[int]:
    server = await asyncio.start_server(_cut_after_two, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def test_the_pipe_gives_the_replies_that_came_with_the_lost_connection(port: int) -> None:
    pipe = RedisPipe(f"redis://127.0.0.1:{port}")
    try:
        with pytest.raises(RepliesLost, match="lost") as lost:
            await pipe.execute([("GET", "a"), ("GET", "b"), ("GET", "c")])
        assert lost.value.replies == [1, 0]
    finally:
        await pipe.close()


async def test_the_store_reports_the_calls_that_ran_before_the_connection_went(port: int) -> None:
    pipe = RedisPipe(f"redis://127.0.0.1:{port}")
    conn = StoreConnection(None, pipe)  # type: ignore[arg-type]  # only the pipe is used
    conn._shas = {"apply": "0" * 40}  # as if loaded: no SCRIPT LOAD round trip
    ran: dict[int, Any] = {}
    calls = [(("k1",), ["a"]), (("k2",), ["b"]), (("k3",), ["c"])]
    try:
        with pytest.raises(RepliesUnknown) as lost:
            await conn.eval_many("apply", "apply", calls, ran)
        assert ran == {0: 1, 1: 0}  # the third may or may not have run: not reported
        assert lost.value.unanswered == (2,)  # but named
        assert isinstance(lost.value, StoreUnavailable)  # an outage, to wait out
    finally:
        await pipe.close()
