"""The learners on real Kafka and Redis, across what happens to their topic: a risk
example sent twice teaches once even when another learner (another worker, after a
leader change or a restart) reads the copy, and a partition added to the topic while the
learner runs is read from its beginning, its lag reported, nothing learned twice."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic

from agents.risk_watch import RiskHolder
from feature_store import FeatureStore, StoreConfig
from schemas.risk import RiskExample, encode_risk_example
from streams.metrics import Metrics
from streams.model_snapshots import RISK, Snapshot
from streams.risk_learner import RiskLearner
from streams.services import Services

pytestmark = pytest.mark.integration

TS = datetime(2026, 12, 1, 12, tzinfo=UTC)


def _store(services: Services) -> FeatureStore:
    prefix = f"lt{uuid.uuid4().hex[:8]}"
    return FeatureStore.from_url(services.redis_url, StoreConfig(prefix.encode(), prefix))


async def _topic(bootstrap: str, partitions: int = 1) -> str:
    name = f"lt-risk-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()
    return name


async def _send(bootstrap: str, topic: str, ids: list[str], partition: int = 0) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for i, example_id in enumerate(ids):
            example = RiskExample(example_id=example_id, x={"experience": 0.1 * (i % 9)},
                                  y=i % 2 == 0, snapshot_ts=TS, label_ts=TS)  # fmt: skip
            await producer.send(topic, encode_risk_example(example), partition=partition)
        await producer.flush()
    finally:
        await producer.stop()


async def _published(store: FeatureStore) -> tuple[int, dict[str, int]]:
    """The published risk snapshot: how many examples it learned, and its offsets."""
    found = await store.models.load(RISK)
    if found is None:
        return 0, {}
    snap = msgspec.json.decode(found[1], type=Snapshot)
    return int(snap.model["examples"]), snap.offsets


async def _lead_until(
    learner: RiskLearner, done: Callable[[], bool], settle_s: float = 1.5
) -> None:
    """Let ``learner`` lead until ``done()``, then ``settle_s`` longer (anything learned
    twice would show), then stop it."""
    stop = False

    async def watch() -> None:
        nonlocal stop
        deadline = time.monotonic() + 60
        while not done():
            assert time.monotonic() < deadline, "the learner did not get there in time"
            await asyncio.sleep(0.1)
        await asyncio.sleep(settle_s)
        stop = True

    await asyncio.gather(learner.run(lambda: not stop), watch())


async def test_a_risk_example_sent_twice_teaches_once_whichever_learner_reads_it(
    kafka_redis: Services, caplog: pytest.LogCaptureFixture
) -> None:
    bootstrap = kafka_redis.kafka_bootstrap
    topic = await _topic(bootstrap)
    first_ids = [f"risk:{uuid.uuid4().hex[:24]}:1796126400000" for _ in range(30)]
    await _send(bootstrap, topic, first_ids)
    store = _store(kafka_redis)
    try:
        leader = RiskLearner(store, RiskHolder(), Metrics(), bootstrap, topic,
                             publish_every_s=0.2)  # fmt: skip
        with caplog.at_level(logging.INFO, logger="streams.learner"):
            await _lead_until(leader, lambda: leader.examples == 30)
        assert (await _published(store))[0] == 30
        said = [r.getMessage() for r in caplog.records]
        assert any("risk learner handed over: this worker no longer leads" in s for s in said), said
        # The leader's worker is gone; another worker's learner leads. Meanwhile a third
        # of the examples were sent again (a retried batch, a sweep sent again), with
        # new ones among them.
        new_ids = [f"risk:{uuid.uuid4().hex[:24]}:1796126400000" for _ in range(10)]
        await _send(bootstrap, topic, [*first_ids[::3], *new_ids])
        successor = RiskLearner(store, RiskHolder(), Metrics(), bootstrap, topic,
                                publish_every_s=0.2)  # fmt: skip
        await _lead_until(successor, lambda: successor.examples >= 40)
        assert successor.examples == 40
        assert (await _published(store))[0] == 40
    finally:
        await store.close()


async def test_a_partition_added_while_the_learner_runs_is_read(kafka_redis: Services) -> None:
    bootstrap = kafka_redis.kafka_bootstrap
    topic = await _topic(bootstrap)
    await _send(bootstrap, topic, [f"risk:p0:{i}" for i in range(20)])
    store, metrics = _store(kafka_redis), Metrics()
    learner = RiskLearner(store, RiskHolder(), metrics, bootstrap, topic, publish_every_s=0.2,
                          partitions_every_s=0.5)  # fmt: skip
    lag = metrics.registry.get_sample_value
    stop = False
    task = asyncio.create_task(learner.run(lambda: not stop))
    try:
        deadline = time.monotonic() + 60
        while learner.examples < 20:
            assert time.monotonic() < deadline and not task.done()
            await asyncio.sleep(0.1)
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:  # an operator grows the topic while the learner runs
            await admin.create_partitions({topic: NewPartitions(total_count=2)})
        finally:
            await admin.close()
        await _send(bootstrap, topic, [f"risk:p1:{i}" for i in range(15)], partition=1)
        await _send(bootstrap, topic, [f"risk:p0:{i}" for i in range(20, 25)], partition=0)
        while learner.examples < 40:
            assert time.monotonic() < deadline and not task.done(), learner.examples
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.5)  # anything read twice would show now
        assert learner.examples == 40
        assert lag("moments_consumer_lag", {"topic": topic, "partition": "1"}) == 0
        assert (await _published(store)) == (40, {"0": 25, "1": 15})
    finally:
        stop = True
        await task
        await store.close()
