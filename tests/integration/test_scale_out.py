"""Scale-out and faults: several workers share the load, and survive losing one."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner

from feature_store import touchpoint_fact
from feature_store.reference import CustomerState
from schemas import decode_touchpoint
from tests.integration.conftest import Pipeline, Worker, consume_all
from tests.integration.test_touchpoints_pipeline import CUSTOMERS, good_events, is_moment, produce

pytestmark = pytest.mark.integration

CONTACT = ("shown:", "last_shown:", "last_contact:", "interventions", "last_intervention:",
           "last_intervention_priority:", "last_intervention_capped:", "risk_")  # fmt: skip
PARTITIONS = 12


def spread(events: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """Event times spread over the last 30 days (none in the future)."""
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(days=30)
    for e in events:
        stamp = start + timedelta(seconds=rng.randint(0, 30 * 86400 - 600))
        e["ts"] = stamp.isoformat().replace("+00:00", "Z")
    return events


def reference(events: list[dict[str, Any]]) -> dict[str, CustomerState]:
    state: dict[str, CustomerState] = defaultdict(CustomerState)
    now_ms = int(time.time() * 1000)
    for e in events:
        state[e["customer_id"]].apply(touchpoint_fact(decode_touchpoint(json.dumps(e))), now_ms)
    return state


def activity(events: list[dict[str, Any]]) -> int:
    """What :func:`applied` reads once all ``events`` are applied: the customers' own
    activity (an email sent to them, delivered or bounced is none)."""
    return sum(int(s.profile.get("n", 0)) for s in reference(events).values())


async def applied(pipeline: Pipeline, customers: list[str]) -> int:
    store = pipeline.store()
    try:
        return sum([int((await store.raw(c))["profile"].get("n", 0)) for c in customers])
    finally:
        await store.close()


async def assert_reference_state(pipeline: Pipeline, expected: dict[str, CustomerState]) -> None:
    store = pipeline.store()
    try:
        for customer, state in expected.items():
            raw = await store.raw(customer)
            profile = {k: v for k, v in raw["profile"].items() if not k.startswith(CONTACT)}
            assert profile == state.profile, customer
            assert raw["windows"] == state.windows, customer
            assert raw["recent"] == state.recent, customer
    finally:
        await store.close()


def partition_of(customer: str) -> int:
    return int(DefaultPartitioner()(customer.encode(), list(range(PARTITIONS)), []))


async def shared_out(
    pipeline: Pipeline, workers: list[Worker], partitions: int, within: float = 90
) -> dict[int, set[int]]:
    """Wait until every worker holds a share of the touchpoints' partitions, and every
    partition is held: the partitions each one holds, by its place in ``workers``."""
    deadline = time.monotonic() + within
    owned: dict[int, set[int]] = {}
    while time.monotonic() < deadline:
        for i, w in enumerate(workers):
            _, body = w.get("/metrics")
            owned[i] = {int(line.split('partition="')[1].split('"')[0])
                        for line in body.splitlines()
                        if line.startswith("moments_consumer_lag{")
                        and pipeline.topic("touchpoints") in line}  # fmt: skip
        # every partition reported too: just after a rebalance, a worker reports lag for
        # the partitions it was given only once it has fetched from them
        if all(owned.values()) and set().union(*owned.values()) == set(range(partitions)):
            return owned
        await asyncio.sleep(0.5)
    raise AssertionError(f"the partitions were not shared out within {within}s: {owned}")


async def test_three_workers_survive_losing_one_mid_stream(pipeline: Pipeline) -> None:
    bootstrap = pipeline.services.kafka_bootstrap
    env = {"MOMENTS_TOPIC_PARTITIONS": str(PARTITIONS), "MOMENTS_KAFKA_SESSION_TIMEOUT_S": "10"}
    workers = [pipeline.start_worker(**env) for _ in range(3)]
    events = spread(good_events(12_000, seed=61), seed=62)
    producing = asyncio.create_task(produce(
        bootstrap, pipeline.topic("touchpoints"),
        [(e["customer_id"].encode(), json.dumps(e).encode()) for e in events],
    ))  # fmt: skip
    expected = reference(events)
    everything = sum(int(state.profile.get("n", 0)) for state in expected.values())

    owned = await shared_out(pipeline, workers, PARTITIONS)

    # kill one in the middle of the stream
    while await applied(pipeline, CUSTOMERS) < everything // 3:  # noqa: ASYNC110 (polling Redis)
        await asyncio.sleep(0.5)
    victim, survivors = workers[0], workers[1:]
    orphans = [c for c in CUSTOMERS if partition_of(c) in owned[0]]
    assert orphans, "the victim must own some customers"
    before = await applied(pipeline, orphans)
    victim.proc.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    victim.proc.wait()
    assert await applied(pipeline, CUSTOMERS) < everything, "killed after the end"

    # the survivors take over the victim's partitions (within the session timeout and a
    # rebalance; how soon is the bench's to measure, not a test's)
    while await applied(pipeline, orphans) == before:
        assert time.monotonic() - killed_at < 60, "nobody took over the orphaned partitions"
        await asyncio.sleep(0.2)

    await producing
    deadline = time.monotonic() + 240
    while await applied(pipeline, CUSTOMERS) < everything and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(1)
    await asyncio.sleep(2)  # anything applied twice would show up now
    await assert_reference_state(pipeline, expected)
    assert all(w.proc.poll() is None for w in survivors)
    # the survivors read again what the victim had applied but not committed, and found
    # it applied: the kill tested that nothing is applied twice
    replayed = sum(w.metric_sum("moments_events_total", result="duplicate") for w in survivors)
    assert replayed > 0, "no event was read again after the kill: dedupe went untested"

    # decisions: one id per decision moment, distinct across moments
    moments = {e["event_id"] for e in events if is_moment(e)}
    records = await consume_all(bootstrap, pipeline.topic("next-best-offers"), len(moments),
                                wait_s=120)  # fmt: skip
    ids: dict[str, set[str]] = defaultdict(set)
    for record in records:
        body = json.loads(record.value)  # type: ignore[attr-defined]
        ids[body["trigger_event_id"]].add(body["decision_id"])
    assert set(ids) == moments
    assert all(len(v) == 1 for v in ids.values())
    assert len({next(iter(v)) for v in ids.values()}) == len(moments)


def test_a_worker_joining_a_balanced_group_gets_a_share(pipeline: Pipeline) -> None:
    """Four partitions, two workers holding two each: a third one added takes one of
    them (Faust's assignor kept the two within its cap and left the third idle, never
    ready, while the app asked for a standby replica of tables it does not have)."""
    env = {"MOMENTS_TOPIC_PARTITIONS": "4", "MOMENTS_KAFKA_SESSION_TIMEOUT_S": "10"}
    first, second = pipeline.start_worker(**env), pipeline.start_worker(**env)
    third = pipeline.start_worker(timeout=60, **env)  # ready: it holds a partition
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # and so, once rebalanced, do the other two
        if all(w.get("/readyz")[0] == 200 for w in (first, second, third)):
            return
        time.sleep(0.5)
    raise AssertionError("the three workers were never all ready at once")
