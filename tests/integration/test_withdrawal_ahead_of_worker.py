"""A withdrawal the API accepted (202) is honoured by its own recommendations at once,
however far behind the workers are, and counted once when a worker applies it; an
erased customer's is kept beside the tombstone and brings no key back (real Kafka and
Redis)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import Pipeline
from tests.integration.test_api_erasure import tombstone_of
from tests.integration.test_api_support import (
    DEV_AUTH,
    call,
    event,
    eventually,
    keys_tagged,
    left_by_erasure,
)
from tests.integration.test_catalogue_live import recommended

pytestmark = pytest.mark.integration

SETTINGS = {"MOMENTS_POLICY": "rules", "MOMENTS_CONTROL_PERCENT": "0",
            "MOMENTS_API_BUDGET_MS": "5000"}  # fmt: skip
CHANNELS = ("email", "sms", "call", "web")


async def post(api: Any, *events: Any) -> None:
    posted = await call("POST", f"{api.url}/v1/events", headers=DEV_AUTH, body=list(events))
    assert posted.status == 202, posted


async def test_withdrawal_holds_from_the_202_and_the_worker_counts_it_once(
    pipeline: Pipeline,
) -> None:
    api = pipeline.start_api(**SETTINGS)  # no worker yet: down, rebalancing or behind
    assert (await recommended(api, "wd-other", "email"))["offers"]  # offered, as all were
    for i in range(10):
        await post(api, event("consent", f"wd-{i}", f"wd-e{i}", minutes_ago=1,
                              channel="email", granted=False))  # fmt: skip
        answer = await recommended(api, f"wd-{i}", "email")  # at once after the 202
        assert answer["offers"] == [] and "suppressed:consent:email" in answer["reasons"]
    await post(api, event("consent", "wd-all", "wd-all-1", minutes_ago=1, channel="all",
                          granted=False))  # fmt: skip
    for channel in CHANNELS:
        answer = await recommended(api, "wd-all", channel)
        assert answer["offers"] == [], (channel, answer)
    # a grant dated before the withdrawal (sent late) does not undo it
    await post(api, event("consent", "wd-0", "wd-late-grant", minutes_ago=30, channel="email",
                          granted=True))  # fmt: skip

    pipeline.start_worker(**SETTINGS)
    store = pipeline.store()
    try:

        async def applied() -> bool:
            record = await store.export("wd-0")
            ids = {i for i, _ in record.applied}
            return {"t:wd-e0", "t:wd-late-grant"} <= ids

        await eventually(applied, "the worker applied the touchpoints")
        record = await store.export("wd-0")
        # the touchpoint counted once (the API's fact counts nothing), consent withdrawn
        assert record.profile["n:consent"] == "2" and record.profile["n"] == "2"
        assert record.profile["consent:email"] == "0"
        assert {i for i, _ in record.applied} >= {"w:wd-e0", "t:wd-e0"}
        assert (await recommended(api, "wd-0", "email"))["offers"] == []
    finally:
        await store.close()


async def test_an_erased_customers_withdrawal_brings_no_key_back(pipeline: Pipeline) -> None:
    api = pipeline.start_api(**SETTINGS)
    await post(api, event("web_click", "wd-gone", "wd-g1", minutes_ago=5))
    erased = await call("DELETE", f"{api.url}/v1/customers/wd-gone", headers=DEV_AUTH)
    assert erased.status in (200, 202), erased
    await post(api, event("consent", "wd-gone", "wd-g2", minutes_ago=0, channel="sms",
                          granted=False))  # fmt: skip
    store = pipeline.store()
    try:
        tag = store.pseudonym("wd-gone")
        tombstone = tombstone_of(pipeline, "wd-gone")
        left = await keys_tagged(pipeline.services.redis_url, tag)
        assert left == left_by_erasure(tombstone, withdrew=True)
        assert (await store.export("wd-gone")).withdrawals_kept == ["consent:sms"]
    finally:
        await store.close()
