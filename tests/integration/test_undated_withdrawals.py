"""A consent withdrawal dated a placeholder time (the "zero" time,
0001-01-01T00:00:00Z, of a producer that left it unset) holds from when it was received:
the Kafka record's time for the worker and ``moments rebuild``, the receipt for
``POST /v1/events`` (real Kafka and Redis).

Before, it ranked by its own time, and lost to every grant the customer had made: a 202,
and the customer was still emailed (under ``consent_required``, on every channel)."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

import pytest

from feature_store.facts import ts_ms
from schemas import decode_touchpoint
from streams.services import LocalRedis
from tests.integration.conftest import Pipeline
from tests.integration.test_api_support import DEV_AUTH, call, event, eventually
from tests.integration.test_catalogue_live import recommended
from tests.integration.test_rebuild_records import rebuilt, write

pytestmark = pytest.mark.integration

SETTINGS = {"MOMENTS_POLICY": "rules", "MOMENTS_CONTROL_PERCENT": "0",
            "MOMENTS_API_BUDGET_MS": "5000"}  # fmt: skip
ZERO = "0001-01-01T00:00:00Z"


def sent(events: list[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
    return [(e["customer_id"].encode(), json.dumps(e).encode()) for e in events]


def dated(e: dict[str, Any]) -> int:
    return ts_ms(datetime.fromisoformat(e["ts"]))


def granted_then_unset(customer: str) -> list[dict[str, Any]]:
    """A grant of email a day ago, then a withdrawal of everything with the zero time."""
    return [
        event("web_click", customer, f"{customer}-c", minutes_ago=30),
        event("consent", customer, f"{customer}-g", minutes_ago=24 * 60, channel="email",
              granted=True),
        event("consent", customer, f"{customer}-w", channel="all", granted=False) | {"ts": ZERO},
    ]  # fmt: skip


async def test_the_worker_honours_a_withdrawal_sent_with_the_zero_time(
    pipeline: Pipeline,
) -> None:
    customer = "ud-kafka"
    grant_first, withdrawal = granted_then_unset(customer)[:2], granted_then_unset(customer)[2]
    pipeline.start_worker(**SETTINGS)
    store = pipeline.store()
    try:
        await write(pipeline, "touchpoints", sent(grant_first))

        async def email() -> str | None:
            return (await store.export(customer)).profile.get("consent:email")

        await eventually(lambda: _equals(email, "1"), "the grant applied")
        (metadata,) = await write(pipeline, "touchpoints", sent([withdrawal]))
        await eventually(lambda: _equals(email, "0"), "the withdrawal applied")
        profile = (await store.export(customer)).profile
        # as of when it was sent, on every channel, the one granted included
        assert profile["consent:email@"] == str(metadata.timestamp)
        assert {profile[f"consent:{c}"] for c in ("email", "sms", "call", "web")} == {"0"}
        assert "n:consent" in profile and profile["n:consent"] == "1"  # the rest expired
    finally:
        await store.close()


async def _equals(read: Any, value: str) -> bool:
    return bool(await read() == value)


async def test_the_api_honours_a_withdrawal_sent_with_the_zero_time_from_its_202(
    pipeline: Pipeline,
) -> None:
    customer = "ud-api"
    *before, withdrawal = granted_then_unset(customer)
    api = pipeline.start_api(**SETTINGS)  # no worker: behind, or down
    store = pipeline.store()
    try:
        await store.apply([decode_touchpoint(json.dumps(e)) for e in before])
        assert (await store.export(customer)).profile["consent:email"] == "1"
        posted_from = round(time.time() * 1000)
        answer = await call("POST", f"{api.url}/v1/events", headers=DEV_AUTH, body=[withdrawal])
        assert answer.status == 202, answer
        posted_by = round(time.time() * 1000)
        got = await recommended(api, customer, "email")
        assert got["offers"] == [] and "suppressed:consent:email" in got["reasons"], got
        profile = (await store.export(customer)).profile
        assert posted_from <= int(profile["consent:email@"]) <= posted_by
    finally:
        await store.close()


async def test_rebuild_honours_a_withdrawal_sent_with_the_zero_time_as_live(
    pipeline: Pipeline, private_redis: LocalRedis
) -> None:
    customer = f"{pipeline.prefix}ud-rebuild"
    history = granted_then_unset(customer)
    withdrawn_at = round(time.time() * 1000) - 10 * 60_000  # sent ten minutes ago
    await write(pipeline, "touchpoints", sent(history),
                [dated(history[0]), dated(history[1]), withdrawn_at])  # fmt: skip
    report, store = await rebuilt(pipeline, private_redis)
    try:
        profile = (await store.export(customer)).profile
        assert profile["consent:email"] == "0"
        assert profile["consent:email@"] == str(withdrawn_at)
        assert report.expired == 1
    finally:
        await store.close()
