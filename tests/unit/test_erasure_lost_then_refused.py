"""An erasure whose script reached Redis, after which the connection dropped with no reply
and Redis stopped taking connections (crashed, or failed over, right after running it):
redis-py's one retry meets a refused connect, and the store reported a plain
StoreUnavailable, so the API wrote no erasure record though the erasure may have run. A
small server of the test's own stands for that Redis (it answers the handshake, takes
the script and dies)."""

from __future__ import annotations

import asyncio

import pytest

from feature_store import ErasureUnknown, FeatureStore, StoreConfig, StoreUnavailable


async def _server_that_dies_after_eval() -> tuple[asyncio.Server, dict[str, bytes]]:
    got: dict[str, bytes] = {"data": b""}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            got["data"] += data
            if b"EVAL" in data:
                server.close()  # no more connections: the retry's connect is refused
                writer.transport.abort()  # the script ran (say); its reply never comes
                return
            writer.write(b"+OK\r\n" * data.count(b"*"))  # the client's handshake
            await writer.drain()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, got


async def test_an_erasure_whose_script_was_sent_is_unknown_though_the_retry_is_refused() -> None:
    server, got = await _server_that_dies_after_eval()
    port = server.sockets[0].getsockname()[1]
    store = FeatureStore.from_url(f"redis://127.0.0.1:{port}", StoreConfig(secret=b"s"),
                                  timeout_s=1.0)  # fmt: skip
    try:
        with pytest.raises(StoreUnavailable) as failed:
            await store.erase("c1", replicas=1, within_ms=100)
        assert b"EVAL" in got["data"]  # the script was written to Redis
        assert isinstance(failed.value, ErasureUnknown), repr(failed.value)
    finally:
        await store.close()
