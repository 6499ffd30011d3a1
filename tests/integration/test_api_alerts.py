"""GET /v1/alerts/stream: interventions from Kafka reach contact-centre screens over SSE.

Interventions are written by a plain aiokafka producer to the deployment's prefixed
``interventions`` topic, as any engine instance would; screens are real HTTP clients.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.integration.conftest import Pipeline
from tests.integration.test_api_support import DEV_AUTH, SseClient, SseEvent, assert_error, call
from tests.integration.test_touchpoints_pipeline import produce

pytestmark = pytest.mark.integration

CUSTOMER = "alert-cust-1"  # one key: one partition, so the alerts keep their order


def intervention(n: int, queue: str | None) -> dict[str, Any]:
    """An intervention as the contract describes it (DESIGN.md section 4)."""
    return {
        "intervention_id": f"iv-{n}",
        "customer_id": CUSTOMER,
        "ts": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "kind": "retention_call",
        "priority": 1,
        "queue": queue,
        "agent_id": None,
        "trigger_event_id": f"ev-{n}",
        "reasons": ["complaint_call"],
        "suggested_action": "Offer a goodwill credit.",
        "context": {"segment": "loyal", "risk": 0.8, "value": 900.0, "recent_touchpoints": []},
    }


async def send(pipeline: Pipeline, *alerts: dict[str, Any]) -> None:
    records = [(CUSTOMER.encode(), json.dumps(a).encode()) for a in alerts]
    await produce(pipeline.services.kafka_bootstrap, pipeline.topic("interventions"), records)


def ids(events: list[SseEvent]) -> list[str]:
    return [e.json["intervention_id"] for e in events]


async def receive(client: SseClient, n: int) -> list[SseEvent]:
    return [await client.next() for _ in range(n)]


async def test_alerts_reach_screens_filtered_by_queue_and_resume_after_last_event_id(
    pipeline: Pipeline,
) -> None:
    api = pipeline.start_api()
    stream = f"{api.url}/v1/alerts/stream"
    assert_error(await call("GET", stream), 401)

    async with (
        SseClient(stream, DEV_AUTH) as everything,
        SseClient(f"{stream}?queue=vip", DEV_AUTH) as vip,
    ):
        for client in (everything, vip):
            assert client.response is not None and client.response.status == 200
            assert client.response.headers["Content-Type"].startswith("text/event-stream")
            await client.subscribed()

        # An intervention produced to Kafka reaches a connected screen.
        await send(pipeline, intervention(1, "retention"))
        (first,) = await receive(everything, 1)
        assert first.event == "intervention"
        assert first.json == intervention(1, "retention") | {"ts": first.json["ts"]}
        assert first.id is not None and first.id.count("-") == 1, first.id
        assert everything.retry == "2000"

        # ?queue= keeps only that queue's alerts (in order, none of the others).
        await send(
            pipeline,
            intervention(2, "billing"),
            intervention(3, "vip"),
            intervention(4, None),
            intervention(5, "vip"),
        )
        rest = await receive(everything, 4)
        assert ids(rest) == ["iv-2", "iv-3", "iv-4", "iv-5"]
        assert ids(await receive(vip, 2)) == ["iv-3", "iv-5"]
        await vip.nothing_more(1.0)
        every_id = [first.id, *(e.id for e in rest)]
        assert len(set(every_id)) == 5

    # A screen that reconnects with Last-Event-ID gets only what came after it.
    after_3 = {**DEV_AUTH, "Last-Event-ID": every_id[2]}
    async with SseClient(stream, after_3) as resumed:
        assert ids(await receive(resumed, 2)) == ["iv-4", "iv-5"]
        await send(pipeline, intervention(6, "vip"))
        (live,) = await receive(resumed, 1)
        assert ids([live]) == ["iv-6"]
        await resumed.nothing_more(1.0)
    async with SseClient(f"{stream}?queue=vip", after_3) as resumed_vip:
        assert ids(await receive(resumed_vip, 2)) == ["iv-5", "iv-6"]
        await resumed_vip.nothing_more(1.0)
