"""The API stops as orchestrators stop it (SIGTERM): the decisions it answered and had not
yet published reach Kafka before it exits, and open alert streams do not hold it up."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time

import aiohttp
import pytest

from tests.integration.conftest import Pipeline
from tests.integration.test_api_support import DEV_AUTH, call, read_to_end

pytestmark = pytest.mark.integration


async def test_sigterm_publishes_the_answered_decisions_and_exits_cleanly(
    pipeline: Pipeline,
) -> None:
    # decisions wait up to a minute to share a Kafka request: only a clean stop sends them
    api = pipeline.start_api(MOMENTS_API_PUBLISH_LINGER_MS="60000", MOMENTS_CONTROL_PERCENT="0")
    answer = await call("GET", f"{api.url}/v1/customers/stop-1/recommendations", headers=DEV_AUTH)
    assert answer.status == 200, answer
    async with aiohttp.ClientSession() as session:
        stream = await session.get(f"{api.url}/v1/alerts/stream", headers=DEV_AUTH)
        assert stream.status == 200
        started = time.monotonic()
        api.proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(api.proc.wait, 30)
        took = time.monotonic() - started
        stream.close()
    assert code == 0, api.log_path.read_text()[-2000:]
    assert took < 15, took  # the open alert stream did not hold the stop up
    published = [json.loads(r.value)["decision_id"]  # type: ignore[attr-defined]
                 for r in await read_to_end(pipeline.services.kafka_bootstrap,
                                            pipeline.topic("next-best-offers"))]  # fmt: skip
    assert published == [answer.json["decision_id"]]


async def test_a_port_in_use_stops_the_start_with_one_line(pipeline: Pipeline) -> None:
    """It was an OSError traceback (exit 1) after the topics and Redis were checked."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        env = {**pipeline.env(0), "MOMENTS_API_PORT": str(port)}
        done = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "streams.cli", "api"], env=env,
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 2, done.stderr
    said = [line for line in done.stderr.splitlines() if line.startswith("moments: ")]
    assert said == [f"moments: MOMENTS_API_HOST / MOMENTS_API_PORT: cannot listen on "
                    f"127.0.0.1:{port}: Address already in use"], done.stderr  # fmt: skip
    assert "Traceback" not in done.stderr
