"""A Redis that stops answering (a connection a NAT dropped silently, a frozen server) is
an outage after the request timeout, not a wait without end: the connection is dropped,
and the next call connects again.

The "server" here is a TCP listener that answers the PING a new connection starts with,
then reads and never answers: all a client sees of a connection that went half-open.
Real Redis, frozen, is in ``tests/integration``.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from redis.exceptions import TimeoutError as RedisTimeoutError

from feature_store import StoreUnavailable
from feature_store.connection import StoreConnection
from feature_store.transport import RedisPipe, keepalive_options


@dataclass
class Silent:
    """Accepts connections, answers their first PING (the handshake), then reads what
    comes and answers nothing."""

    port: int = 0
    connections: int = 0
    closed: int = 0
    server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        first = await reader.read(65536)
        if b"PING" in first:
            writer.write(b"+PONG\r\n")
        while await reader.read(65536):
            pass
        self.closed += 1
        writer.close()


@pytest_asyncio.fixture(loop_scope="function")
async def silent() -> AsyncIterator[Silent]:
    found = Silent()
    found.server = await asyncio.start_server(found._serve, "127.0.0.1", 0)
    found.port = found.server.sockets[0].getsockname()[1]
    try:
        yield found
    finally:
        found.server.close()


async def test_a_call_without_replies_times_out_and_drops_its_connection(silent: Silent) -> None:
    pipe = RedisPipe(f"redis://127.0.0.1:{silent.port}", request_timeout_s=0.2)
    calls = [pipe.execute([("PING",)]), pipe.execute([("GET", "k")])]  # in flight together
    outcomes = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 5)
    assert all(isinstance(o, RedisTimeoutError) for o in outcomes), outcomes
    for _ in range(50):  # the server sees the connection go
        if silent.closed:
            break
        await asyncio.sleep(0.02)
    assert (silent.connections, silent.closed) == (1, 1)
    with pytest.raises(RedisTimeoutError):
        await asyncio.wait_for(pipe.execute([("PING",)]), 5)
    assert silent.connections == 2  # the next call connected again
    await pipe.close()


async def test_the_feature_store_reports_a_silent_redis_as_unavailable(silent: Silent) -> None:
    pipe = RedisPipe(f"redis://127.0.0.1:{silent.port}", request_timeout_s=0.2)
    conn = StoreConnection(None, pipe)  # type: ignore[arg-type]  # only the pipe is used
    with pytest.raises(StoreUnavailable, match="TimeoutError"):
        await asyncio.wait_for(conn.submit([("PING",)]), 5)
    await pipe.close()


async def test_the_connection_is_kept_alive_while_idle(silent: Silent) -> None:
    pipe = RedisPipe(f"redis://127.0.0.1:{silent.port}")
    wire = await pipe._connect()
    sock = wire._transport.get_extra_info("socket") if wire._transport else None
    assert sock is not None
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    for option, value in keepalive_options().items():
        assert sock.getsockopt(socket.IPPROTO_TCP, option) == value
    await pipe.close()


class Answering:
    """A server on its own thread: it answers the handshake's PING, reads ``count``
    PINGs, then answers the n-th ``delays[n]`` seconds after it read them all."""

    def __init__(self, count: int, delays: list[float]) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._count, self._delays = count, delays
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        conn, _ = self._listener.accept()
        with conn:
            handshake = b""
            while b"PING" not in handshake:
                handshake += conn.recv(65536)
            conn.sendall(b"+PONG\r\n")
            seen = b""
            while seen.count(b"PING") < self._count:
                seen += conn.recv(65536)
            start = time.monotonic()
            for delay in self._delays:
                time.sleep(max(start + delay - time.monotonic(), 0))
                conn.sendall(b"+PONG\r\n")
            time.sleep(1)
        self._listener.close()


async def test_a_call_behind_replies_that_keep_coming_is_not_a_timeout() -> None:
    server = Answering(3, [0.0, 0.3, 0.6])  # each reply within the timeout of the last
    pipe = RedisPipe(f"redis://127.0.0.1:{server.port}", request_timeout_s=0.5)
    try:
        replies = await asyncio.wait_for(asyncio.gather(
            *(pipe.execute([("PING",)]) for _ in range(3))), 5)  # fmt: skip
        assert replies == [["PONG"]] * 3
    finally:
        await pipe.close()
