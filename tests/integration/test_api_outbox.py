"""An API process killed outright (SIGKILL) with decisions answered and not yet
acknowledged by Kafka: another API process publishes them from its outbox in Redis."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.integration.conftest import Pipeline
from tests.integration.test_api_support import DEV_AUTH, call, eventually, read_to_end

pytestmark = pytest.mark.integration


async def _recommend(api: Any, customers: list[str]) -> list[str]:
    """The decision ids the API answered ``customers`` with (none a fallback)."""
    ids = []
    for customer in customers:
        answer = await call(
            "GET", f"{api.url}/v1/customers/{customer}/recommendations", headers=DEV_AUTH
        )
        assert answer.status == 200, answer
        assert not answer.json.get("fallback"), answer
        ids.append(answer.json["decision_id"])
    return ids


async def _published(pipeline: Pipeline) -> list[str]:
    records = await read_to_end(
        pipeline.services.kafka_bootstrap, pipeline.topic("next-best-offers")
    )
    return [json.loads(r.value)["decision_id"] for r in records]


async def _outbox_keys(pipeline: Pipeline) -> list[str]:
    """The keys of the deployment's outboxes, leases and registry."""
    redis = aioredis.from_url(pipeline.services.redis_url, decode_responses=True)
    try:
        prefix = pipeline.prefix.rstrip("-")
        return sorted([k async for k in redis.scan_iter(match=f"{prefix}:outbox*")])
    finally:
        await redis.aclose()


async def test_decisions_of_an_api_killed_outright_are_published_by_another(
    pipeline: Pipeline,
) -> None:
    # decisions wait a minute to share a Kafka request: none is published before the kill
    first = pipeline.start_api(MOMENTS_API_PUBLISH_LINGER_MS="60000", MOMENTS_CONTROL_PERCENT="0")
    customers = [f"kill-{i}" for i in range(12)]
    answered = await _recommend(first, customers)
    first.proc.send_signal(signal.SIGKILL)
    await asyncio.to_thread(first.proc.wait, 30)
    assert await _published(pipeline) == []
    # one customer is erased meanwhile: their decision is not published after it
    store = pipeline.store()
    try:
        await store.erase(customers[0])
    finally:
        await store.close()

    second = pipeline.start_api()

    async def all_published() -> list[str] | None:
        found = await _published(pipeline)
        return found if set(answered[1:]) <= set(found) else None

    published = await eventually(all_published, "the killed API's decisions published", 45)
    assert answered[0] not in published  # erased before the sweep
    assert set(published) == set(answered[1:]), published  # each at least once

    async def counted() -> float | None:  # counted once Kafka acknowledged, a moment after
        value: float = await asyncio.to_thread(
            second.metric,
            "moments_outbox_republished_total",
            topic=pipeline.topic("next-best-offers"),
        )
        return value if value >= len(answered) - 1 else None

    republished = await eventually(counted, "the republished decisions counted", 10)
    assert republished == len(answered) - 1
    log = second.log_path.read_text()
    assert not any(c in log for c in customers), log  # no customer named in its lines

    async def swept() -> bool:
        keys = await _outbox_keys(pipeline)
        leases = [k for k in keys if ":outbox-lease:" in k]
        return len(leases) == 1 and not [k for k in keys if ":outbox:" in k]

    # the dead process's outbox and lease are gone: the live one's lease is left
    await eventually(swept, "the dead outbox removed", 15)


async def test_a_clean_stop_leaves_no_outbox(pipeline: Pipeline) -> None:
    """SIGTERM after Kafka acknowledged everything: the outbox and lease are removed, and
    the process leaves the registry."""
    api = pipeline.start_api(MOMENTS_CONTROL_PERCENT="0")

    async def registered() -> bool:  # its lease, the registry
        return len(await _outbox_keys(pipeline)) == 2

    await eventually(registered, "the API's lease", 10)
    store = pipeline.store()
    try:  # which are no customer's: a rebuild or a start check finds the store empty
        assert not await store.has_any_customer()
    finally:
        await store.close()
    answered = await _recommend(api, ["stop-1", "stop-2"])
    api.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(api.proc.wait, 30) == 0
    assert sorted(await _published(pipeline)) == sorted(answered)
    assert await _outbox_keys(pipeline) == []


async def test_decisions_kafka_did_not_take_before_a_clean_stop_are_published_by_another(
    private_pipeline: Pipeline,
) -> None:
    """Kafka frozen while the API stops (SIGTERM): what it answered is given up by the
    process (counted), left in its outbox, and published by the next API process."""
    kafka = private_pipeline.services.kafka
    assert kafka is not None and kafka.process is not None
    first = private_pipeline.start_api(MOMENTS_CONTROL_PERCENT="0")
    os.kill(kafka.process.proc.pid, signal.SIGSTOP)
    try:
        answered = await _recommend(first, [f"away-{i}" for i in range(5)])
        first.proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(first.proc.wait, 40) == 0
    finally:
        os.kill(kafka.process.proc.pid, signal.SIGCONT)
    log = first.log_path.read_text()
    assert "decisions Kafka did not acknowledge are left in the outbox" in log, log[-3000:]
    keys = await _outbox_keys(private_pipeline)
    assert not [k for k in keys if ":outbox-lease:" in k], keys  # swept at once
    private_pipeline.start_api()

    async def all_published() -> bool:
        return set(answered) <= set(await _published(private_pipeline))

    await eventually(all_published, "the stopped API's decisions published", 45)
