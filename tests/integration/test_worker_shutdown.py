"""A worker told to stop (SIGTERM: a rolling deploy, a pod eviction) while Redis is down
and it retries a batch: it exits promptly and cleanly, well within the pods' grace
period, commits nothing past the events it did not apply, and a worker started once Redis
is back applies each of them once.

Faust waits, before it stops anything, for the batch under way to be done; a batch that
waits out the outage never is, so the worker used to hang until it was killed (SIGKILL
after the grace period), and none of its shutdown hooks ran.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from typing import Any

import pytest

from tests.integration.conftest import Pipeline
from tests.integration.test_api_support import eventually, metric_total
from tests.integration.test_scale_out import CONTACT, activity, applied, reference, spread
from tests.integration.test_service_restarts import committed, produced, send
from tests.integration.test_touchpoints_pipeline import CUSTOMERS, good_events

pytestmark = pytest.mark.integration

STOP_WITHIN_S = 10.0  # the pods' grace period is 30 s (deploy/k8s/base/worker-deployment.yaml)


async def test_a_worker_stopped_during_a_redis_outage_exits_and_loses_nothing(
    private_pipeline: Pipeline,
) -> None:
    p = private_pipeline
    redis = p.services.redis
    assert redis is not None
    events = spread(good_events(300, seed=5), seed=6)
    worker = p.start_worker()
    await send(p, events[:150])

    async def all_committed() -> int:
        done = await committed(p)
        return done if done == await produced(p) else 0

    stalled = await eventually(all_committed, "the worker to commit all it was sent", 60)
    retried = metric_total(worker, "moments_batch_retries_total")
    await asyncio.to_thread(redis.stop)
    await send(p, events[150:])

    async def trying_again() -> bool:
        return metric_total(worker, "moments_batch_retries_total") > retried

    await eventually(trying_again, "the worker to retry a batch while Redis is down", 60)
    await asyncio.sleep(2)  # commit rounds go by (one a second) while the batch waits
    before = await committed(p)
    assert before == stalled, "committed while Redis was down"

    took, on_the_way_out = await stop_and_wait(worker)
    assert took < STOP_WITHIN_S, f"the worker took {took:.1f}s to stop"
    assert "Traceback" not in on_the_way_out and "CRITICAL" not in on_the_way_out, on_the_way_out
    assert await committed(p) == before, "the batch not applied was committed at shutdown"

    # Redis comes back and a worker starts: it reads the events not done, applies each once
    await asyncio.to_thread(redis.start)
    p.start_worker()

    async def all_applied() -> bool:
        return await applied(p, CUSTOMERS) >= activity(events)

    await eventually(all_applied, "every event applied after the restart", 60)
    await eventually(all_committed, "the new worker to commit all it was sent", 30)
    await assert_applied_once(p, events)


async def stop_and_wait(worker: Any) -> tuple[float, str]:
    """SIGTERM the worker and wait for it to exit 0 within STOP_WITHIN_S: how long it took,
    and what it logged meanwhile."""
    logged = worker.log_path.stat().st_size
    started = time.monotonic()
    worker.proc.terminate()
    try:
        code = await asyncio.to_thread(worker.proc.wait, STOP_WITHIN_S + 5)
    except subprocess.TimeoutExpired:
        worker.proc.kill()
        await asyncio.to_thread(worker.proc.wait)
        code = None
    took = time.monotonic() - started
    with worker.log_path.open("rb") as log:
        log.seek(logged)
        on_the_way_out = log.read().decode(errors="replace")
    said = on_the_way_out
    assert code is not None, (
        f"the worker did not stop within {STOP_WITHIN_S + 5:.0f}s:\n{said[-4000:]}"
    )
    assert code == 0, f"exit code {code}:\n{on_the_way_out[-3000:]}"
    return took, on_the_way_out


async def test_a_worker_stopped_while_kafka_is_away_mid_batch_exits_and_loses_nothing(
    private_pipeline: Pipeline,
) -> None:
    """Its batch's decisions cannot reach Kafka: it does not wait for the producer to give
    them up (20 minutes, by Faust's default) before it stops, nor hold its batch done."""
    p = private_pipeline
    events = spread(good_events(2000, seed=31), seed=32)
    worker = p.start_worker(MOMENTS_BATCH_SIZE="50")
    await send(p, events)

    async def some_applied() -> bool:
        return await applied(p, CUSTOMERS) >= 200

    await eventually(some_applied, "the worker to apply some of the events", 60)
    await asyncio.to_thread(p.services.kafka.kill)
    await asyncio.sleep(5)  # a batch's decisions wait for Kafka
    took, _ = await stop_and_wait(worker)
    assert took < STOP_WITHIN_S, f"the worker took {took:.1f}s to stop"
    await asyncio.to_thread(p.services.kafka.restart)
    p.start_worker(MOMENTS_BATCH_SIZE="50")

    async def all_applied() -> bool:
        return await applied(p, CUSTOMERS) >= activity(events)

    await eventually(all_applied, "every event applied after the restart", 120)
    await assert_applied_once(p, events)


async def test_an_idle_worker_stopped_while_kafka_is_away_exits_within_seconds(
    private_pipeline: Pipeline,
) -> None:
    p = private_pipeline
    worker = p.start_worker(MOMENTS_LOG_LEVEL="info")  # its way out, should it hang
    await send(p, spread(good_events(100, seed=33), seed=34))

    async def all_committed() -> bool:
        return await committed(p) == await produced(p)

    await eventually(all_committed, "the worker to commit all it was sent", 60)
    await asyncio.to_thread(p.services.kafka.kill)
    await asyncio.sleep(5)
    took, _ = await stop_and_wait(worker)
    assert took < STOP_WITHIN_S, f"the worker took {took:.1f}s to stop"


async def assert_applied_once(pipeline: Pipeline, events: list[dict[str, Any]]) -> None:
    """Every customer's state is what applying each of ``events`` once makes (contact
    and intervention bookkeeping aside: decisions, not events, set it)."""
    store = pipeline.store()
    try:
        for customer, state in reference(events).items():
            raw = await store.raw(customer)
            profile = {k: v for k, v in raw["profile"].items()
                       if not k.startswith((*CONTACT, "last_intervention_priority:"))}  # fmt: skip
            assert (profile, raw["windows"], raw["recent"]) == (
                state.profile,
                state.windows,
                state.recent,
            ), customer
    finally:
        await store.close()
