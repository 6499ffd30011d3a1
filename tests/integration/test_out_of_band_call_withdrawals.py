"""A withdrawal of consent to calls dated too far ahead (a CTI writing CET local time
marked Z) or a placeholder time (a producer that left it unset) is applied out of band;
it still tells the screen holding a call-back not to call, once (real Kafka and Redis, a
worker). Adapted from the alerts review's reproduction."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from typing import Any

import pytest

from tests.integration.conftest import Pipeline, consume_all
from tests.integration.test_interventions_pipeline import NOW, event, send
from tests.integration.test_service_restarts import all_handled

pytestmark = pytest.mark.integration


async def withdrawn_from_calls(pipeline: Pipeline, customer: str) -> None:
    """Wait until the customer's withdrawal of consent to calls holds in the store."""
    store = pipeline.store()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            profile = await store.read(customer)
            if profile is not None and profile.consent.get("call") is False:
                return
            await asyncio.sleep(0.3)
        raise AssertionError("the withdrawal was not applied")
    finally:
        await store.close()


async def stopped_after_a_call_back(
    pipeline: Pipeline, customer: str, withdrawal: dict[str, Any]
) -> list[tuple[str, str]]:
    """Raise a save desk for ``customer`` from the cancellation page, send
    ``withdrawal`` twice (the second as a re-drive of its letter would), and return the
    alerts raised: (kind, trigger event id)."""
    pipeline.start_worker()
    topic = pipeline.topic("interventions")
    leaving = event("web_click", customer, NOW, f"{customer}-page", page="/account/cancel")
    await send(pipeline, [leaving])
    first = await consume_all(pipeline.services.kafka_bootstrap, topic, 1)
    assert [json.loads(r.value)["kind"] for r in first] == ["save_desk"]  # type: ignore[attr-defined]
    await send(pipeline, [withdrawal])
    await withdrawn_from_calls(pipeline, customer)
    await all_handled(pipeline)
    await send(pipeline, [withdrawal])  # again: no second do-not-call
    await all_handled(pipeline)
    records = await consume_all(pipeline.services.kafka_bootstrap, topic, 3, wait_s=8)
    alerts = [json.loads(r.value) for r in records]  # type: ignore[attr-defined]
    return [(a["kind"], a["trigger_event_id"]) for a in alerts]


async def test_a_call_withdrawal_dated_ahead_stops_the_call_back(pipeline: Pipeline) -> None:
    ahead = event("consent", "leaver", NOW + timedelta(hours=1), "dnc-ahead",
                  channel="call", granted=False)  # fmt: skip
    told = await stopped_after_a_call_back(pipeline, "leaver", ahead)
    assert told == [("save_desk", "leaver-page"), ("do_not_call", "dnc-ahead")], told


async def test_a_call_withdrawal_dated_a_placeholder_time_stops_the_call_back(
    pipeline: Pipeline,
) -> None:
    zero = {"type": "consent", "event_id": "dnc-zero", "customer_id": "leaver0",
            "ts": "0001-01-01T00:00:00Z", "channel": "all", "granted": False}  # fmt: skip
    told = await stopped_after_a_call_back(pipeline, "leaver0", zero)
    assert told == [("save_desk", "leaver0-page"), ("do_not_call", "dnc-zero")], told
