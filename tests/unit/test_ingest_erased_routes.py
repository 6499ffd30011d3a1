"""POST /v1/events and /v1/outcomes with erased customers
(streams/api/ingest_views.py, streams/api/erased_items.py), at the routes, no services."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from streams.api.server import API_KEY
from streams.metrics import Metrics
from tests.unit.api_app import api_app

AUTH = {"Authorization": "Bearer backend-key"}
TS = "2026-01-01T00:00:00Z"


def click(customer: str, event_id: str) -> dict[str, Any]:
    return {"type": "web_click", "event_id": event_id, "customer_id": customer, "ts": TS,
            "page": "/"}  # fmt: skip


def withdrawal(customer: str, event_id: str) -> dict[str, Any]:
    return {"type": "consent", "event_id": event_id, "customer_id": customer, "ts": TS,
            "channel": "email", "granted": False}  # fmt: skip


def outcome(customer: str, decision_id: str, what: str) -> dict[str, Any]:
    return {"decision_id": decision_id, "customer_id": customer, "offer_id": "o1",
            "outcome": what, "ts": TS}  # fmt: skip


class Publisher:
    """Takes every write at once and keeps it; says what size it was asked to take."""

    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes]] = []
        self.sizes: list[int] = []

    def would_refuse(self, size: int) -> bool:
        self.sizes.append(size)
        return False

    def publish(self, topic: str, records: Any, linger: bool = True) -> asyncio.Future[None]:
        self.records += records
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class Erasures:
    """Redis's tombstones: ``gone`` erased; ``fail`` the next checks that fail."""

    def __init__(self, gone: set[str], fail: int = 0) -> None:
        self.gone, self.fail, self.asked = gone, fail, 0

    async def erased(self, customers: Any) -> list[bool]:
        self.asked += 1
        if self.fail:
            self.fail -= 1
            raise TimeoutError
        return [c in self.gone for c in customers]


async def post(app: Any, path: str, body: Any) -> tuple[int, Any]:
    async with TestClient(TestServer(app)) as client:
        reply = await client.post(path, json=body, headers=AUTH)
        return reply.status, await reply.json()


async def test_events_write_the_kept_items_and_an_erased_customers_withdrawal_only() -> None:
    metrics, publisher = Metrics(), Publisher()
    app = api_app(publisher=publisher, metrics=metrics, store=Erasures({"gone"}))
    body = [click("c1", "e1"), withdrawal("gone", "e2"), click("gone", "e3"),
            click("c2", "e4"), click("gone", "e5")]  # fmt: skip
    status, answer = await post(app, "/v1/events", body)
    assert status == 202 and answer["accepted"] == 5
    written = [(key, json.loads(value)["event_id"]) for key, value in publisher.records]
    assert written == [(b"c1", "e1"), (b"gone", "e2"), (b"c2", "e4")]
    sample = metrics.registry.get_sample_value
    # items left out, each counted; the withdrawal written is not among them
    assert sample("moments_ingest_erased_total", {"route": "/v1/events"}) == 2
    assert sample("moments_events_total", {"type": "web_click", "result": "erased"}) == 2
    assert not sample("moments_events_total", {"type": "consent", "result": "erased"})


async def test_outcomes_count_as_accepted_only_those_written() -> None:
    metrics, publisher = Metrics(), Publisher()
    app = api_app(publisher=publisher, metrics=metrics, store=Erasures({"gone"}))
    body = [outcome("c1", "d1", "shown"), outcome("gone", "d2", "clicked"),
            outcome("gone", "d3", "shown")]  # fmt: skip
    status, _ = await post(app, "/v1/outcomes", body)
    assert status == 202 and len(publisher.records) == 1
    sample = metrics.registry.get_sample_value
    assert sample("moments_outcomes_accepted_total", {"outcome": "shown"}) == 1
    assert not sample("moments_outcomes_accepted_total", {"outcome": "clicked"})
    assert sample("moments_ingest_erased_total", {"route": "/v1/outcomes"}) == 2


async def test_an_all_erased_request_asks_room_for_its_records_keys_and_all() -> None:
    publisher = Publisher()
    app = api_app(publisher=publisher, store=Erasures({"gone"}))
    item = click("gone", "e1")
    status, _ = await post(app, "/v1/events", item)
    assert status == 202 and publisher.records == []
    sent = json.dumps(item).encode()  # as aiohttp sends it
    assert publisher.sizes == [len(b"gone") + len(sent)]


async def test_an_erased_customers_item_too_large_for_kafka_is_a_413_as_anyones() -> None:
    publisher = Publisher()
    app = api_app(publisher=publisher, store=Erasures({"gone"}))
    item = click("gone", "e1") | {"note": "x" * 900_000}
    status, answer = await post(app, "/v1/events", item)
    assert (status, answer["error"]) == (413, "record_too_large")


async def test_a_probe_answered_in_time_ends_the_pause_on_checks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [100.0]
    monkeypatch.setattr(
        "streams.api.ingest_views.time", SimpleNamespace(monotonic=lambda: clock[0])
    )
    publisher, erasures = Publisher(), Erasures({"gone"}, fail=1)
    app = api_app(publisher=publisher, store=erasures)
    looks: list[float] = []
    monkeypatch.setattr(app[API_KEY].outages, "look_now", lambda: looks.append(clock[0]))
    async with TestClient(TestServer(app)) as client:

        async def send(at: float, event_id: str) -> None:
            clock[0] = at
            reply = await client.post("/v1/events", json=click("gone", event_id), headers=AUTH)
            assert reply.status == 202

        await send(100.0, "e1")  # the check fails: written unchecked, the watch told
        assert looks == [100.0]
        await send(100.6, "e2")  # a probe, answered: the pause ends
        await send(100.7, "e3")  # asked again at once
    assert erasures.asked == 3
    assert [json.loads(v)["event_id"] for _, v in publisher.records] == ["e1"]


async def test_requests_while_redis_is_known_away_do_not_pause_the_checks_after() -> None:
    publisher, erasures = Publisher(), Erasures({"gone"})
    app = api_app(publisher=publisher, store=erasures)
    outages = app[API_KEY].outages
    outages.saw("redis", False)
    async with TestClient(TestServer(app)) as client:
        first = await client.post("/v1/events", json=click("gone", "e1"), headers=AUTH)
        outages.saw("redis", True)  # found up again
        second = await client.post("/v1/events", json=click("gone", "e2"), headers=AUTH)
        assert first.status == second.status == 202
    assert erasures.asked == 1  # the first was not asked; the second was
    assert [json.loads(v)["event_id"] for _, v in publisher.records] == ["e1"]


class SlowPublisher(Publisher):
    """Acknowledges each write after ``seconds``."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def publish(self, topic: str, records: Any, linger: bool = True) -> asyncio.Future[None]:
        self.records += records
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(self.seconds, done.set_result, None)
        return done


@pytest.mark.parametrize(
    ("path", "live", "erased"),
    [("/v1/events", click("c1", "e1"), click("gone", "e2")),
     ("/v1/outcomes", outcome("c1", "d1", "shown"), outcome("gone", "d2", "shown"))],
)  # fmt: skip
async def test_an_all_erased_request_is_answered_no_sooner_than_a_write(
    path: str, live: dict[str, Any], erased: dict[str, Any]
) -> None:
    """Its speed must not tell the sender that the customer was erased."""
    publisher = SlowPublisher(0.2)
    app = api_app(publisher=publisher, store=Erasures({"gone"}))
    loop = asyncio.get_running_loop()
    async with TestClient(TestServer(app)) as client:
        answered = []
        for item in (live, erased):
            started = loop.time()
            reply = await client.post(path, json=item, headers=AUTH)
            assert reply.status == 202
            answered.append(loop.time() - started)
    assert len(publisher.records) == 1 and len(app[API_KEY].ingest_writes) == 1
    assert answered[0] >= 0.2 and answered[1] >= 0.18, answered
