"""Fallback answers show no web offers to a customer this API process saw withdraw
their consent to the web (or to all) through its own POST /v1/events: the API runs on a
private redis-server that the test stops; Kafka stays up."""

from __future__ import annotations

from typing import Any

import pytest

from streams.services import LocalRedis
from tests.integration.conftest import Pipeline
from tests.integration.test_api_support import DEV_AUTH, call, event

pytestmark = pytest.mark.integration


async def web(api: Any, customer: str) -> dict[str, Any]:
    url = f"{api.url}/v1/customers/{customer}/recommendations?channel=web&limit=3"
    reply = await call("GET", url, headers=DEV_AUTH)
    assert reply.status == 200, reply
    body: dict[str, Any] = reply.json
    return body


async def test_fallbacks_offer_nothing_on_the_web_to_those_seen_withdrawing(
    pipeline: Pipeline, private_redis: LocalRedis
) -> None:
    api = pipeline.start_api(
        redis_url=private_redis.url, MOMENTS_CONTROL_PERCENT="0", MOMENTS_API_BUDGET_MS="3000"
    )
    posted = await call("POST", f"{api.url}/v1/events", headers=DEV_AUTH, body=[
        event("consent", "fw-web", "fw-1", minutes_ago=2, channel="web", granted=False),
        event("consent", "fw-all", "fw-2", minutes_ago=2, channel="all", granted=False),
        # a grant dated before the withdrawal, sent after it: does not lift it
        event("consent", "fw-web", "fw-3", minutes_ago=20, channel="web", granted=True),
        # one who withdrew and granted again, half an hour later
        event("consent", "fw-back", "fw-4", minutes_ago=40, channel="web", granted=False),
        event("consent", "fw-back", "fw-5", minutes_ago=5, channel="web", granted=True),
        event("consent", "fw-mail", "fw-6", minutes_ago=2, channel="email", granted=False),
    ])  # fmt: skip
    assert posted.status == 202, posted
    assert (await web(api, "fw-web"))["fallback"] is False  # decided while Redis is up

    private_redis.stop()
    for customer in ("fw-web", "fw-all"):
        answer = await web(api, customer)
        assert answer["fallback"] is True, answer
        assert answer["offers"] == [] and "suppressed:consent:web" in answer["reasons"]
    for customer in ("fw-back", "fw-mail", "fw-stranger"):  # the web defaults
        answer = await web(api, customer)
        assert answer["fallback"] is True and answer["offers"], (customer, answer)
    log = api.log_path.read_text()
    assert "fw-web" not in log and "fw-all" not in log  # named by no log line
