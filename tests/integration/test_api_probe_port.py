"""An API at its connection cap still answers its probes and its scrape, on the probe
port (``MOMENTS_API_PROBE_PORT``): the cap answered kubelet's liveness probe and
Prometheus 503 too, so a pod that was only full was restarted and reported down."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from streams.services import Services, free_port
from tests.integration.conftest import Pipeline
from tests.integration.test_api_connections import response

pytestmark = pytest.mark.integration

HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: moments\r\n\r\n"


async def asked(port: int, request: bytes) -> tuple[bytes, bytes]:
    """The answer to ``request`` on a connection of its own, closed after it (nothing
    sent: what the server answers as the connection opens)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        if request:
            writer.write(request)
            await writer.drain()
        if request.startswith(b"HEAD "):
            return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5), b""
        return await response(reader, 5)
    finally:
        writer.close()


async def test_an_api_at_its_cap_answers_its_probes_and_scrape_on_the_probe_port(
    kafka_redis: Services, tmp_path: Path
) -> None:
    deployment = Pipeline(kafka_redis, tmp_path)
    probe_port = free_port()
    try:
        api = deployment.start_api(
            MOMENTS_API_MAX_CONNECTIONS="3", MOMENTS_API_PROBE_PORT=str(probe_port)
        )
        held = [await asyncio.open_connection("127.0.0.1", api.port) for _ in range(3)]
        for reader, writer in held:  # three keep-alive clients, served and kept
            writer.write(HEALTHZ)
            await writer.drain()
            head, _ = await response(reader, 5)
            assert head.startswith(b"HTTP/1.1 200"), head
        for _ in range(2):  # the client port is full: every new connection a 503 as it opens
            head, body = await asked(api.port, b"")
            assert head.startswith(b"HTTP/1.1 503"), head
            assert json.loads(body)["error"] == "too_many_connections", body
        for _ in range(5):  # more than the three the cap holds: the probes are not counted
            head, body = await asked(probe_port, HEALTHZ)
            assert head.startswith(b"HTTP/1.1 200"), head
            assert json.loads(body) == {"status": "ok"}
        head, _ = await asked(probe_port, b"HEAD /healthz HTTP/1.1\r\nHost: m\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head  # kubelet and uptime checks use HEAD
        head, body = await asked(probe_port, b"GET /readyz HTTP/1.1\r\nHost: m\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and json.loads(body)["status"] == "ready", body
        head, body = await asked(probe_port, b"GET /metrics HTTP/1.1\r\nHost: m\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        refused = re.search(rb"^moments_http_connections_refused_total (\S+)$", body, re.M)
        assert refused is not None and float(refused[1]) == 2.0, body[:2000]
        # only the probes: the API's own paths are not served past the cap this way
        for request in (
            b"GET /v1/offers HTTP/1.1\r\nHost: m\r\nX-API-Key: moments-dev-key\r\n\r\n",
            b"POST /healthz HTTP/1.1\r\nHost: m\r\nContent-Length: 0\r\n\r\n",
        ):
            head, body = await asked(probe_port, request)
            assert head.startswith(b"HTTP/1.1 404"), head
            assert json.loads(body)["error"] == "not_found", body
        for _, writer in held:
            writer.close()
    finally:
        deployment.stop()
