"""A consent withdrawal sent under an event id already applied (a producer that keys
"subscribe" and "unsubscribe" by one form id) is honoured by the worker and by ``moments
rebuild`` as by the API, which applies it under an id of its own: its withdrawal fields
are applied all the same, nothing else of it counted again (real Kafka and Redis).

Before, the worker dropped it as a duplicate (consent stayed granted, email offers kept
coming), and a rebuild gave back the grant the API had honoured the withdrawal of."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from feature_store.facts import ts_ms
from streams.services import LocalRedis
from tests.integration.conftest import Pipeline
from tests.integration.test_api_support import event, eventually
from tests.integration.test_rebuild_records import rebuilt, write

pytestmark = pytest.mark.integration

SETTINGS = {"MOMENTS_POLICY": "rules", "MOMENTS_CONTROL_PERCENT": "0"}


def sent(events: list[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
    return [(e["customer_id"].encode(), json.dumps(e).encode()) for e in events]


def dated(e: dict[str, Any]) -> int:
    return ts_ms(datetime.fromisoformat(e["ts"]))


async def test_the_worker_applies_a_withdrawal_sent_under_a_grants_id(pipeline: Pipeline) -> None:
    customer = "ru-kafka"
    grant = event("consent", customer, "form-1", minutes_ago=30, channel="email", granted=True)
    withdrawal = event("consent", customer, "form-1", minutes_ago=1, channel="email",
                       granted=False)  # fmt: skip
    pipeline.start_worker(**SETTINGS)
    store = pipeline.store()
    try:
        await write(pipeline, "touchpoints", sent([grant]))

        async def profile() -> dict[str, str]:
            return (await store.export(customer)).profile

        await eventually(lambda: _is(profile, "consent:email", "1"), "the grant applied")
        await write(pipeline, "touchpoints", sent([withdrawal]))
        await eventually(lambda: _is(profile, "consent:email", "0"), "the withdrawal applied")
        got = await profile()
        assert got["consent:email@"] == str(dated(withdrawal))
        assert got["n:consent"] == "1" and got["n"] == "1"  # a duplicate all the same
        features = await store.read(customer)
        assert features is not None and features.consent["email"] is False
        assert (await store.raw(customer))["optouts"]["consent:email"] == "0"
    finally:
        await store.close()


async def _is(read: Any, field: str, value: str) -> bool:
    return (await read()).get(field) == value


async def test_rebuild_applies_a_withdrawal_sent_under_a_grants_id(
    pipeline: Pipeline, private_redis: LocalRedis
) -> None:
    customer = f"{pipeline.prefix}ru-rebuild"
    history = [
        event("web_click", customer, "ru-c", minutes_ago=40),
        event("consent", customer, "form-2", minutes_ago=30, channel="all", granted=True),
        event("consent", customer, "form-2", minutes_ago=1, channel="sms", granted=False),
    ]
    await write(pipeline, "touchpoints", sent(history), [dated(e) for e in history])
    report, store = await rebuilt(pipeline, private_redis)
    try:
        profile = (await store.export(customer)).profile
        assert profile["consent:sms"] == "0"  # withdrawn, as live through the API
        assert profile["consent:email"] == "1"  # the rest of the grant stands
        assert profile["n:consent"] == "1" and profile["n"] == "2"
        assert report.duplicates == 1
    finally:
        await store.close()
