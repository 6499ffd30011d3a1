"""The probe port in-process: the client listener at its cap (3 kept-alive connections)
answers 503, the probe port answers /healthz, /readyz and /metrics, and nothing else."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace

from aiohttp import web

from streams.api.probe_port import probe_runner
from streams.api.protocol_errors import JsonErrorsAppRunner
from streams.api.server import API_KEY
from tests.unit.api_app import api_app

HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: moments\r\n\r\n"


async def _ping() -> bool:
    return True


def _started() -> asyncio.Event:
    started = asyncio.Event()
    started.set()
    return started


@asynccontextmanager
async def listening(runner: web.AppRunner) -> AsyncIterator[int]:
    """``runner`` served on a free loopback port, which it yields."""
    await runner.setup()
    sock = socket.create_server(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    try:
        yield sock.getsockname()[1]
    finally:
        await runner.cleanup()


async def asked(port: int, request: bytes) -> bytes:
    """All ``request`` (nothing: what the server says as it opens) is answered, to the close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        if request:
            writer.write(request.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1))
            await writer.drain()
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


async def test_the_probe_port_answers_past_the_cap_and_only_the_probes() -> None:
    store = SimpleNamespace(erased=lambda ids: [False] * len(ids), ping=_ping)
    app = api_app(
        store=store,
        alerts=SimpleNamespace(erased_lately=set(), ready=_started()),
        reloads=SimpleNamespace(tried=_started()),
    )
    refused: list[None] = []
    main = JsonErrorsAppRunner(app, access_log=None, max_connections=3,
                               on_refused=lambda: refused.append(None))  # fmt: skip
    async with listening(main) as port:
        probes = probe_runner(app[API_KEY], head_timeout_s=5.0)
        async with listening(probes) as probe_port:
            held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
            for reader, writer in held:
                writer.write(HEALTHZ)
                await writer.drain()
                assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
            assert (await asked(port, b"")).startswith(b"HTTP/1.1 503")
            assert refused == [None]
            for path in (b"/healthz", b"/readyz", b"/metrics"):
                answer = await asked(probe_port, b"GET %s HTTP/1.1\r\nHost: m\r\n\r\n" % path)
                assert answer.startswith(b"HTTP/1.1 200"), answer
            head = await asked(probe_port, b"HEAD /healthz HTTP/1.1\r\nHost: m\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200") and head.endswith(b"\r\n\r\n"), head
            for request in (
                b"GET /v1/offers HTTP/1.1\r\nHost: m\r\nX-API-Key: backend-key\r\n\r\n",
                b"GET /console HTTP/1.1\r\nHost: m\r\n\r\n",
                b"GET /v1/customers/alice%20smith HTTP/1.1\r\nHost: m\r\n\r\n",
                b"DELETE /healthz HTTP/1.1\r\nHost: m\r\n\r\n",
                b"POST /metrics HTTP/1.1\r\nHost: m\r\nContent-Length: 2\r\n\r\n{}",
            ):
                answer = await asked(probe_port, request)
                assert answer.startswith(b"HTTP/1.1 404"), (request, answer)
                body = json.loads(answer.partition(b"\r\n\r\n")[2])
                assert body["error"] == "not_found" and b"alice" not in answer, answer
            for _, writer in held:
                writer.close()
