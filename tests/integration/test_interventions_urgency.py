"""Through a real worker on real Kafka and Redis: a cool-down holds back only alerts that
are no more urgent (the customer who calls to cancel after the cancellation page's
call-back task reaches the agent), and a lapsed customer who comes back by opening the
win-back email gets a win-back on the click that follows."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.integration.conftest import Pipeline, consume_all
from tests.integration.test_interventions_pipeline import (
    event,
    purchases,
    recorded,
    send,
    settle,
)
from tests.integration.test_service_restarts import all_handled

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC)


async def alerts(pipeline: Pipeline, expected: int, wait_s: float = 60.0) -> list[dict[str, Any]]:
    records = await consume_all(
        pipeline.services.kafka_bootstrap, pipeline.topic("interventions"), expected, wait_s
    )
    return [json.loads(r.value) for r in records]  # type: ignore[attr-defined]


async def test_the_caller_breaks_through_the_pages_cool_down_and_a_return_by_email_is_noticed(
    pipeline: Pipeline,
) -> None:
    pipeline.start_worker()
    old = NOW - timedelta(days=120)
    await send(pipeline, purchases("lapsed", old, 900.0))
    await settle(pipeline, {"lapsed"}, 3)

    page = event("web_click", "leaver", NOW - timedelta(minutes=5), "page-1",
                 page="/account/cancel")  # fmt: skip
    opened = event("email", "lapsed", NOW - timedelta(seconds=30), "open-1", action="opened")
    click = event("web_click", "lapsed", NOW, "click-1", page="/new")
    await send(pipeline, [page, opened, click])
    first = await alerts(pipeline, 2)
    got = {(a["customer_id"], a["kind"], a["priority"], a["trigger_event_id"]) for a in first}
    assert got == {("leaver", "save_desk", 2, "page-1"), ("lapsed", "win_back", 2, "click-1")}
    assert await recorded(pipeline, "leaver", "last_intervention_priority:save_desk") == "2"

    # five minutes later they phone to cancel: priority 1 for the agent on the line; the
    # page again is held back (same priority), and so is a second call (held back by it)
    call = event("call", "leaver", NOW, "call-1", status="started", direction="inbound",
                 reason="cancel", queue="billing", agent_id="agent-7")  # fmt: skip
    await send(pipeline, [call])
    second = await alerts(pipeline, len(first) + 1)
    new = [a for a in second if a["trigger_event_id"] == "call-1"]
    assert [(a["kind"], a["priority"], a["queue"], a["agent_id"]) for a in new] == [
        ("save_desk", 1, "billing", "agent-7")
    ]
    store = pipeline.store()
    try:  # the call's alert started the cool-down again, at priority 1 (no field: 1)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            leaver = await store.read("leaver")
            if leaver is not None and "save_desk" not in leaver.contact.last_intervention_priority:
                break
            await asyncio.sleep(0.3)
        assert leaver is not None and leaver.contact.last_intervention_priority == {}
    finally:
        await store.close()
    again = [
        dict(page, event_id="page-2", ts=(NOW + timedelta(minutes=1)).isoformat()),
        dict(call, event_id="call-2", ts=(NOW + timedelta(minutes=2)).isoformat()),
    ]
    await send(pipeline, again)
    await settle(pipeline, {"leaver"}, 4)
    await all_handled(pipeline)  # what the batches sent is on the topics
    last = await alerts(pipeline, len(second) + 1, wait_s=5)
    assert [a["trigger_event_id"] for a in last if a["trigger_event_id"].endswith("-2")] == []
