"""A dead-letter topic whose ``max.message.bytes`` is below a letter's size: the poison
record's letter is written reduced, with its own reason; the batch's good records are
applied and decided once, and not dead-lettered; the worker goes on with its partitions;
and ``moments dead-letters --redrive`` reports the reduced letter, sending nothing back."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tests.integration import forked_starts
from tests.integration.conftest import Pipeline, consume_all
from tests.integration.test_api_support import once_counted
from tests.integration.test_touchpoints_pipeline import produce

pytestmark = pytest.mark.integration

POISON = b'{"type": "web_click", "customer_id": "rl-9", "page": "' + b"x" * 10_000


def click(event_id: str, customer: str) -> tuple[bytes, bytes]:
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    event = {"type": "web_click", "event_id": event_id, "customer_id": customer, "ts": now,
             "page": "/p"}  # fmt: skip
    return customer.encode(), json.dumps(event).encode()


async def applied(pipeline: Pipeline, customers: list[str], wait_s: float) -> list[int]:
    """Each customer's touchpoints applied, once all are or time is up."""
    store = pipeline.store()
    try:
        deadline = time.monotonic() + wait_s
        while True:
            counts = [int((await store.raw(c))["profile"].get("n", 0)) for c in customers]
            if all(counts) or time.monotonic() > deadline:
                return counts
            await asyncio.sleep(0.5)
    finally:
        await store.close()


async def test_a_letter_too_large_for_the_topic_is_reduced_and_nothing_else_is_lettered(
    pipeline: Pipeline,
) -> None:
    bootstrap = pipeline.services.kafka_bootstrap
    worker = pipeline.start_worker(MOMENTS_BATCH_SIZE="200")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    dlq = pipeline.topic("touchpoints-dlq")
    try:
        await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, dlq, configs={"max.message.bytes": "4000"})]
        )
    finally:
        await admin.close()
    await asyncio.sleep(1)
    good = [click(f"g-{i}", f"rl-{i % 5}") for i in range(20)]
    poison = [(b"rl-9", POISON), (b"rl-8", b'{"type": "teleport"}')]
    await produce(bootstrap, pipeline.topic("touchpoints"), good[:10] + poison + good[10:])

    letters: list[Any] = await consume_all(bootstrap, dlq, 2, wait_s=30)
    by_key = {r.key: dict(r.headers) for r in letters}
    assert sorted(by_key) == [b"rl-8", b"rl-9"] and len(letters) == 2  # no good record
    reduced = by_key[b"rl-9"]
    assert reduced["error"].startswith(b"invalid"), reduced["error"]  # its own reason
    assert reduced["value-truncated-from"] == str(len(POISON)).encode()
    assert reduced["letter-refused"] == b"MessageSizeTooLargeError"
    assert reduced["source-topic"] == pipeline.topic("touchpoints").encode()
    assert int(reduced["source-offset"]) >= 0 and int(reduced["source-timestamp"]) > 0

    def reduced_letters() -> float:  # counted a moment after Kafka took it
        return worker.metric("moments_dead_letters_refused_total", outcome="reduced")

    def letters_written() -> float:
        return worker.metric("moments_dead_letters_total")

    assert await once_counted(reduced_letters, 1, "the reduced letter counted") == 1
    # each letter written counted once, the reduced one too (not again as refused whole)
    assert await once_counted(letters_written, 2, "the letters counted") == 2

    decisions: list[Any] = await consume_all(bootstrap, pipeline.topic("next-best-offers"), 20,
                                             wait_s=10)  # fmt: skip
    triggers = [json.loads(r.value)["trigger_event_id"] for r in decisions]
    assert triggers and len(triggers) == len(set(triggers))  # each decided once
    assert await applied(pipeline, [f"rl-{i}" for i in range(5)], 5) == [4] * 5
    later = [f"rl-later-{i}" for i in range(4)]  # the poison's partition or another: none waits
    await produce(bootstrap, pipeline.topic("touchpoints"), [click(c, c) for c in later])
    assert await applied(pipeline, later, 20) == [1] * 4

    env = {**pipeline.env(0), "MOMENTS_LOG_LEVEL": "info"}
    run = await asyncio.to_thread(forked_starts.run, ["dead-letters", "--redrive"], env, 300)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["redrive"]["truncated"] == 1
    assert f"{pipeline.topic('touchpoints')}[" in run.stderr  # where to find the original
    assert "rl-9" not in run.stdout + run.stderr
