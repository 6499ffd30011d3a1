"""A consent withdrawal dated more than the clock skew allowed ahead (a producer's clock
running fast, local time marked Z) is dead-lettered as before, and honoured at once; a
grant dated ahead is not applied (real Kafka and Redis, a worker and the API)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.integration.conftest import Pipeline, consume_all
from tests.integration.test_api_support import event, eventually, iso
from tests.integration.test_catalogue_live import recommended
from tests.integration.test_touchpoints_pipeline import produce

pytestmark = pytest.mark.integration

SETTINGS = {"MOMENTS_POLICY": "rules", "MOMENTS_CONTROL_PERCENT": "0",
            "MOMENTS_API_BUDGET_MS": "5000"}  # fmt: skip


def record(touchpoint: dict[str, Any]) -> tuple[bytes, bytes]:
    return touchpoint["customer_id"].encode(), json.dumps(touchpoint).encode()


def ahead(touchpoint: dict[str, Any], minutes: float) -> dict[str, Any]:
    return {**touchpoint, "ts": iso(datetime.now(UTC) + timedelta(minutes=minutes))}


async def test_a_withdrawal_dated_ahead_is_dead_lettered_and_honoured(pipeline: Pipeline) -> None:
    pipeline.start_worker(**SETTINGS)
    api = pipeline.start_api(**SETTINGS)
    bootstrap, topic = pipeline.services.kafka_bootstrap, pipeline.topic("touchpoints")
    withdrawal = event("consent", "ah-1", "ah-w", channel="email", granted=False)
    grant = event("consent", "ah-2", "ah-g", channel="email", granted=True)
    await produce(bootstrap, topic, [
        record(event("web_click", "ah-1", "ah-1c", minutes_ago=2)),
        record(event("web_click", "ah-2", "ah-2c", minutes_ago=2)),
        record(ahead(withdrawal, 60)),  # local time marked Z, in CET
        # customer 2 withdrew, then a grant from a clock 20 minutes fast
        record(event("consent", "ah-2", "ah-2w", minutes_ago=1, channel="email",
                     granted=False)),
        record(ahead(grant, 20)),
    ])  # fmt: skip
    letters = await consume_all(bootstrap, pipeline.topic("touchpoints-dlq"), 2)
    assert sorted(json.loads(r.value)["event_id"] for r in letters) == ["ah-g", "ah-w"]

    store = pipeline.store()
    try:

        async def seen() -> bool:
            return {"t:ah-2w"} <= {i for i, _ in (await store.export("ah-2")).applied}

        await eventually(seen, "the worker applied customer 2's touchpoints")
        first = await store.export("ah-1")
        assert first.profile["consent:email"] == "0"  # applied, stamped no later than now+15m
        assert int(first.profile["consent:email@"]) <= int(
            (datetime.now(UTC) + timedelta(minutes=15)).timestamp() * 1000
        )
        assert "w:ah-w" in {i for i, _ in first.applied}
        assert "t:ah-w" not in {i for i, _ in first.applied}  # the touchpoint is not
        assert "n:consent" not in first.profile
        second = await store.export("ah-2")
        assert second.profile["consent:email"] == "0"  # the grant dated ahead changed nothing
    finally:
        await store.close()
    answer = await recommended(api, "ah-1", "email")
    assert answer["offers"] == [] and "suppressed:consent:email" in answer["reasons"]
    assert (await recommended(api, "ah-1", "web"))["offers"]  # the other channels are offered
