"""A broker that stops answering without refusing (frozen, or cut off by the network):
the worker's /readyz says so, as it does for a broker that is down, and so do the
worker's and the API's ``moments_dependency_up`` (a 5 minute freeze raised no alert)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

import pytest

from tests.integration.conftest import Pipeline, Worker
from tests.integration.test_api_support import eventually

pytestmark = pytest.mark.integration


async def test_a_worker_is_not_ready_while_its_broker_is_frozen(
    private_pipeline: Pipeline,
) -> None:
    """It answered ready, Kafka ok, for the whole of a 60 s freeze: the consumer forgets
    the coordinator only once a heartbeat's request times out (90 s)."""
    kafka = private_pipeline.services.kafka
    assert kafka is not None and kafka.process is not None
    worker = private_pipeline.start_worker()  # ready: its coordinator is watched
    api = private_pipeline.start_api()
    for process in (worker, api):
        await eventually(lambda p=process: shows_kafka(p, "1.0"), "Kafka shown up", 30)
        await eventually(lambda p=process: shows(p, "redis", "1.0"), "Redis shown up", 30)
    pid = kafka.process.proc.pid
    os.kill(pid, signal.SIGSTOP)
    frozen_at = time.monotonic()
    try:

        async def unready() -> dict[str, object] | None:
            status, body = await asyncio.to_thread(worker.get, "/readyz")
            answer: dict[str, object] = json.loads(body)
            return answer if status == 503 else None

        answer = await eventually(unready, "the worker's /readyz to say Kafka is away", 30)
        took = time.monotonic() - frozen_at
        assert answer["checks"] == {  # the session timeout (10 s) and a heartbeat's wait
            "redis": "ok",
            "kafka": "down: the group coordinator does not answer",
        }, answer
        assert took < 20, took
        for process in (worker, api):  # the API: no fetch answered for 10 s
            await eventually(lambda p=process: shows_kafka(p, "0.0"), "Kafka shown down", 30)
    finally:
        os.kill(pid, signal.SIGCONT)

    async def ready() -> bool:
        return (await asyncio.to_thread(worker.get, "/readyz"))[0] == 200

    await eventually(ready, "ready again once the broker answers", 60)
    assert worker.proc.poll() is None
    for process in (worker, api):
        await eventually(lambda p=process: shows_kafka(p, "1.0"), "Kafka shown up again", 60)


async def shows(process: Worker, dependency: str, value: str) -> bool:
    """Whether the process's /metrics shows ``moments_dependency_up`` of ``dependency``
    at ``value``."""
    _, body = await asyncio.to_thread(process.get, "/metrics")
    return f'moments_dependency_up{{dependency="{dependency}"}} {value}' in body


async def shows_kafka(process: Worker, value: str) -> bool:
    return await shows(process, "kafka", value)
