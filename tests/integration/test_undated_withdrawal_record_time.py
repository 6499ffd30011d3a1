"""A zero-time withdrawal whose Kafka record carries timestamp 0 (a producer that copies
the event's unset time into the record, or sets it to 0): the live worker reads 0 as no
time and stamps it when it took it, so it holds; `moments rebuild` now reads the record's
time by the same rule (agents/received.py). It took 0 as the time it was sent, so the
withdrawal ranked at 1970 and the customer's older grant won again, and beside an
erasure it was not kept."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from streams.services import LocalRedis
from tests.integration.conftest import Pipeline
from tests.integration.test_api_support import DEV_AUTH, call, event, eventually
from tests.integration.test_rebuild_records import rebuilt, write
from tests.integration.test_service_restarts import all_handled

pytestmark = pytest.mark.integration
SETTINGS = {"MOMENTS_POLICY": "rules", "MOMENTS_CONTROL_PERCENT": "0"}
ZERO = "0001-01-01T00:00:00Z"


def sent(events: list[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
    return [(e["customer_id"].encode(), json.dumps(e).encode()) for e in events]


def history(customer: str) -> list[dict[str, Any]]:
    return [
        event("web_click", customer, f"{customer}-c", minutes_ago=30),
        event(
            "consent", customer, f"{customer}-g", minutes_ago=24 * 60, channel="email", granted=True
        ),
        event("consent", customer, f"{customer}-w", channel="email", granted=False) | {"ts": ZERO},
    ]


async def test_live_worker_honours_it(pipeline: Pipeline) -> None:
    customer = f"{pipeline.prefix}z0-live"
    h = history(customer)
    pipeline.start_worker(**SETTINGS)
    store = pipeline.store()
    try:
        await write(pipeline, "touchpoints", sent(h[:2]))

        async def email() -> bool:
            return (await store.export(customer)).profile.get("consent:email") == "1"

        await eventually(email, "grant applied")
        await write(pipeline, "touchpoints", sent(h[2:]), [0])

        async def withdrawn() -> bool:
            return (await store.export(customer)).profile.get("consent:email") == "0"

        await eventually(withdrawn, "withdrawal applied live")
    finally:
        await store.close()


async def test_rebuild_keeps_it_as_live(pipeline: Pipeline, private_redis: LocalRedis) -> None:
    customer = f"{pipeline.prefix}z0-rebuild"
    h = history(customer)
    await write(pipeline, "touchpoints", sent(h), [None, None, 0])  # type: ignore[list-item]
    _, store = await rebuilt(pipeline, private_redis)
    try:
        profile = (await store.export(customer)).profile
        assert profile["consent:email"] == "0", profile  # live: withdrawn
    finally:
        await store.close()


async def test_rebuild_keeps_it_beside_an_erasure_as_live(
    pipeline: Pipeline, private_redis: LocalRedis
) -> None:
    """Live: an email grant, then "forget me", then the zero-time withdrawal in a record
    timed 0: the worker stamps it when it took it, after the erasure, and keeps it beside
    the tombstone. The rebuild stamped it 1970, before the erasure: it kept nothing."""
    customer = f"{pipeline.prefix}z0-erased"
    pipeline.start_worker(**SETTINGS)
    api = pipeline.start_api()
    await write(pipeline, "touchpoints", sent(history(customer)[1:2]))
    await all_handled(pipeline)
    erased = await call("DELETE", f"{api.url}/v1/customers/{customer}", headers=DEV_AUTH)
    assert erased.status == 200 and erased.json["withdrawals_kept"] == [], erased
    await asyncio.sleep(1)
    await write(pipeline, "touchpoints", sent(history(customer)[2:]), [0])
    await all_handled(pipeline)
    live = pipeline.store()
    try:
        kept_live = await live.withdrawals_kept(customer)
    finally:
        await live.close()
    assert kept_live == ["consent:email"]
    pipeline.stop()
    _, store = await rebuilt(pipeline, private_redis)
    try:
        assert await store.withdrawals_kept(customer) == kept_live
    finally:
        await store.close()
