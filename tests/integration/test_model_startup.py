"""Restarted workers decide their backlog with the published model snapshots, never with
the empty bandit they start with: the first batch waits for the first load of them. A
worker that does not lead the group used to load them two seconds after it started
deciding, with the reload timer's first round (the leader's learner loads them at once)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import msgspec
import pytest

from agents.bandit import LinUCBOffers
from agents.context import DIMENSION
from agents.risk import ChurnRisk
from streams.model_snapshots import MODEL, RISK, Snapshot
from tests.integration.conftest import Pipeline, consume_all
from tests.integration.test_api_support import event
from tests.integration.test_touchpoints_pipeline import produce

pytestmark = pytest.mark.integration


def snapshot(model: dict[str, object]) -> str:
    payload = Snapshot(model=model, offsets={}, updated_at=datetime.now(UTC))
    return msgspec.json.encode(payload).decode()


async def test_restarted_workers_decide_their_backlog_with_the_published_model(
    pipeline: Pipeline,
) -> None:
    pipeline.start_worker().stop()  # topics made, nothing read: the backlog comes next
    store = pipeline.store()
    try:
        version = 0
        for _ in range(3):  # a series some rounds old
            published = await store.models.publish(MODEL, version, snapshot(
                LinUCBOffers(DIMENSION).to_dict()))  # fmt: skip
            assert published is not None
            version = published
        assert await store.models.publish(RISK, 0, snapshot(ChurnRisk().to_dict())) == 1
    finally:
        await store.close()
    clicks = [event("web_click", f"start-{i % 40}", f"start-e{i}", minutes_ago=1)
              for i in range(2000)]  # fmt: skip
    backlog = [(c["customer_id"].encode(), json.dumps(c).encode()) for c in clicks]
    await produce(pipeline.services.kafka_bootstrap, pipeline.topic("touchpoints"), backlog)

    # Two at once, within the broker's initial rebalance delay: both take partitions of
    # the backlog in the group's first generation, and one of them does not lead.
    await asyncio.gather(asyncio.to_thread(pipeline.start_worker),
                         asyncio.to_thread(pipeline.start_worker))  # fmt: skip
    decisions = await consume_all(
        pipeline.services.kafka_bootstrap, pipeline.topic("next-best-offers"), len(clicks)
    )
    versions = [json.loads(r.value)["model_version"] for r in decisions]  # type: ignore[attr-defined]
    assert len(versions) == len(clicks)
    assert set(versions) == {f"linucb-v{version}"}, {v: versions.count(v) for v in set(versions)}
