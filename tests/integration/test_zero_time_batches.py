"""A touchpoint dated at the zero time with an offset east of UTC (year 0 in UTC) is
valid, and taken as expired like any year-1 time: it takes no batch down with it."""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import Pipeline, consume_all
from tests.integration.test_api_support import event
from tests.integration.test_touchpoints_pipeline import produce

pytestmark = pytest.mark.integration


async def test_a_zero_time_east_of_utc_leaves_its_batch_decided(pipeline: Pipeline) -> None:
    zero = event("web_click", "zt-bad", "zt-zero") | {"ts": "0001-01-01T00:00:00+14:00"}
    clicks = [event("web_click", c, f"zt-{c}", minutes_ago=0.1)
              for c in ("zt-a", "zt-bad", "zt-b", "zt-c")]  # fmt: skip
    records = [(e["customer_id"].encode(), json.dumps(e).encode()) for e in [zero, *clicks]]
    await produce(pipeline.services.kafka_bootstrap, pipeline.topic("touchpoints"), records)
    # the backlog is one batch: it waits a second to fill (a first fetch may hold less)
    pipeline.start_worker(MOMENTS_BATCH_WITHIN_S="1")
    decided = await consume_all(pipeline.services.kafka_bootstrap,
                                pipeline.topic("next-best-offers"), len(clicks))  # fmt: skip
    letters = await consume_all(pipeline.services.kafka_bootstrap,
                                pipeline.topic("touchpoints-dlq"), 0, wait_s=1)  # fmt: skip
    assert [dict(x.headers)["error"] for x in letters] == []  # type: ignore[attr-defined]
    triggers = {json.loads(d.value)["trigger_event_id"] for d in decided}  # type: ignore[attr-defined]
    assert triggers == {c["event_id"] for c in clicks}
