"""A published model snapshot that workers cannot restore (written by a newer version
during a rolling upgrade, say) leaves them running and scoring with the model they hold."""

from __future__ import annotations

import asyncio
import json

import pytest

from streams.model_snapshots import MODEL
from tests.integration.conftest import Pipeline
from tests.integration.test_api_support import event, eventually
from tests.integration.test_touchpoints_pipeline import produce

pytestmark = pytest.mark.integration


async def test_workers_keep_going_past_a_snapshot_they_cannot_restore(pipeline: Pipeline) -> None:
    store = pipeline.store()
    assert await store.models.publish(MODEL, 0, '{"model": {"format": 99}}') == 1
    await store.close()
    worker = pipeline.start_worker()

    async def refused() -> bool:
        reason = f"model_reload:{MODEL}"
        return worker.metric("moments_batch_retries_total", reason=reason) >= 2

    await eventually(refused, "the snapshot refused on two rounds of the reload timer")
    touch = event("web_click", "snap-1", "snap-e1", minutes_ago=1)
    await produce(pipeline.services.kafka_bootstrap, pipeline.topic("touchpoints"),
                  [(b"snap-1", json.dumps(touch).encode())])  # fmt: skip

    async def applied() -> bool:
        return worker.metric("moments_events_total", type="web_click", result="ok") == 1

    await eventually(applied, "an event applied and scored after the refused snapshot")
    await asyncio.sleep(2.5)  # another round of the timer
    assert worker.proc.poll() is None
    assert worker.metric("moments_model_version", model=MODEL) == 0  # the model it held
