"""A Last-Event-ID that is not one of the stream's positions starts the stream from the
buffer, as no id would; it never ends the stream with an error written into it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

import pytest
from aiohttp.test_utils import TestClient, TestServer

from schemas import decode_intervention
from streams.api.alerts import Alert, AlertHub, StreamPosition
from tests.unit.api_app import api_app

AUTH = {"Authorization": "Bearer backend-key"}


async def nobody_erased(customer_ids: Sequence[str]) -> list[bool]:
    return [False] * len(customer_ids)


def buffered_hub() -> AlertHub:
    """A hub (never connected to Kafka) holding one alert, at offset 7 of partition 0."""
    raw = json.dumps({
        "intervention_id": "iv-1", "customer_id": "c-1", "ts": "2026-11-23T10:00:00Z",
        "kind": "retention_call", "priority": 1, "queue": "vip", "trigger_event_id": None,
        "reasons": [], "suggested_action": "Call them.",
    }).encode()  # fmt: skip
    hub = AlertHub("127.0.0.1:9", "interventions", "customer-erasures", nobody_erased)
    hub.publish([Alert("0-7", decode_intervention(raw), raw)])
    return hub


@pytest.mark.parametrize(
    "event_id",
    ["0-" + "9" * 5000, "9" * 5000 + "-1", "0-99999999999999999999", "0-١٢", "0-7.x-1", "-"],
)
def test_an_id_with_numbers_no_kafka_position_has_is_no_position(event_id: str) -> None:
    assert StreamPosition.parse(event_id).event_id() == ""


def test_the_largest_kafka_positions_are_still_positions() -> None:
    largest = f"{2**31 - 1}-{2**63 - 1}"
    assert StreamPosition.parse(largest).event_id() == largest


@pytest.mark.parametrize("how", ["header", "query"])
async def test_a_stream_resumed_from_a_malformed_id_sends_the_buffer(how: str) -> None:
    hub = buffered_hub()
    malformed = "0-" + "9" * 5000
    headers = {**AUTH, "Last-Event-ID": malformed} if how == "header" else AUTH
    query = {"last_event_id": malformed} if how == "query" else {}
    async with TestClient(TestServer(api_app(alerts=hub))) as client:
        reply = await client.get("/v1/alerts/stream", headers=headers, params=query)
        assert reply.status == 200
        assert reply.headers["Content-Type"] == "text/event-stream"
        start = await asyncio.wait_for(reply.content.readuntil(b"event: intervention\n"), 5)
        hub.close_all()  # as at shutdown: the stream ends
        rest = await asyncio.wait_for(reply.content.read(), 5)
    stream = start + rest
    assert stream.startswith(b"retry: 2000\n\nid: 0-7\nevent: intervention\ndata: {")
    assert b"HTTP/1.1" not in stream and b"error" not in stream
