"""A transactional (exactly-once) producer that aborts takes its records back: the worker
applies none of its touchpoints, the learner learns none of its outcomes, and a replay
(``moments rebuild``, ``lift``, ``dead-letters``) reads none of them, while what it
commits after them is read as usual. They used to be applied: an aborted purchase
counted as revenue."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from streams.settings import Settings
from streams.topics import topic_partitions
from tests.integration.conftest import Pipeline
from tests.integration.test_api_support import event, eventually
from tests.integration.test_learning import clicks, decisions_for, outcomes
from tests.integration.test_topic_replay import new_topic, read_all

pytestmark = pytest.mark.integration


async def write_then_abort(
    bootstrap: str,
    topic: str,
    aborted: list[tuple[bytes, bytes]],
    committed: list[tuple[bytes, bytes]],
) -> None:
    """One transaction of ``aborted`` records, aborted, then one of ``committed``."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, transactional_id=f"txn-{uuid.uuid4().hex[:8]}"
    )
    await producer.start()
    try:
        await producer.begin_transaction()
        for key, value in aborted:
            await producer.send_and_wait(topic, value, key=key)
        await producer.abort_transaction()
        async with producer.transaction():
            for key, value in committed:
                await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


def record(e: dict[str, Any]) -> tuple[bytes, bytes]:
    return e["customer_id"].encode(), json.dumps(e).encode()


async def test_an_aborted_transactions_touchpoints_are_not_applied(pipeline: Pipeline) -> None:
    worker = pipeline.start_worker()
    customer = "txn-cust"
    aborted = [
        event("purchase", customer, "txn-aborted-buy", minutes_ago=2, amount=500.0),
        event("call", customer, "txn-aborted-call", minutes_ago=2, reason="cancel"),
    ]
    committed = [event("web_click", customer, "txn-committed", minutes_ago=1)]
    await write_then_abort(
        pipeline.services.kafka_bootstrap,
        pipeline.topic("touchpoints"),
        [record(e) for e in aborted],
        [record(e) for e in committed],
    )

    async def committed_applied() -> bool:
        return worker.metric("moments_events_total", type="web_click", result="ok") == 1

    await eventually(committed_applied, "the committed click applied")
    for kind in ("purchase", "call"):
        assert worker.metric_sum("moments_events_total", type=kind) == 0, kind
    store = pipeline.store()
    try:
        profile = await store.read(customer)
    finally:
        await store.close()
    assert profile is not None
    assert profile.purchases == 0 and profile.spend == 0
    assert [t.event_id for t in profile.recent] == ["txn-committed"]


def one_partition(decisions: list[dict[str, Any]], partitions: int) -> list[dict[str, Any]]:
    """Two decisions whose customers' outcomes share a partition (so that the committed
    one is read after the aborted one)."""
    by_partition: dict[int, list[dict[str, Any]]] = {}
    for d in decisions:
        p = (murmur2(d["customer_id"].encode()) & 0x7FFFFFFF) % partitions
        by_partition.setdefault(p, []).append(d)
    return next(ds[:2] for ds in by_partition.values() if len(ds) >= 2)


async def test_an_aborted_transactions_outcomes_teach_nothing(pipeline: Pipeline) -> None:
    worker = pipeline.start_worker()
    decisions = await decisions_for(pipeline, clicks(40))
    outcomes_topic = pipeline.topic("offer-outcomes")
    partitions = len(await topic_partitions(pipeline.services.kafka_bootstrap, outcomes_topic))
    first, second = outcomes(one_partition(decisions, partitions))
    await write_then_abort(pipeline.services.kafka_bootstrap, outcomes_topic, [first], [second])

    async def learned() -> float:
        return worker.metric("moments_learning_outcomes_total", result="learned")

    await eventually(learned, "the committed outcome learned")
    await asyncio.sleep(2)  # the aborted one, read with it, would be learned by now
    assert await learned() == 1
    assert worker.metric_sum("moments_learning_outcomes_total") == 1


async def test_a_replay_reads_no_aborted_record(pipeline: Pipeline) -> None:
    bootstrap = pipeline.services.kafka_bootstrap
    topic = await new_topic(bootstrap)
    aborted = [(b"k", f"aborted-{n}".encode()) for n in range(3)]
    await write_then_abort(bootstrap, topic, aborted, [(b"k", b"committed")])
    read = await read_all(Settings(kafka_bootstrap=bootstrap), topic)
    assert [r.value for r in read] == [b"committed"]
