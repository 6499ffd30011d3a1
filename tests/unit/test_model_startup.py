"""A process decides nothing with the empty models it starts with while snapshots are
published: a worker's first batch, and an API's first request, wait for the first load
of the published snapshots to be tried. That wait is bounded, and a store that is down
or a snapshot that cannot be read end it at once, so that neither can hold decisions up.

The snapshots' store and the agent's app, stream and topics stand in for Redis and Faust
(as in test_model_reload and test_touchpoint_agent); the API runs in-process with
stand-ins for its Kafka clients. The workers on real Kafka and Redis are in
tests/integration/test_model_startup.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from agents.bandit import LinUCBOffers
from agents.batch_result import BatchResult
from agents.context import DIMENSION
from agents.letters import SourceRecord
from agents.risk import ChurnRisk
from agents.touchpoint_agent import Outlets, register_touchpoint_agent
from feature_store import FeatureStore, StoreUnavailable
from streams import model_reload
from streams.api import server
from streams.api.kafka_health import KafkaHealth
from streams.model_reload import ModelReloads
from streams.model_snapshots import MODEL, RISK
from streams.settings import Settings
from tests.unit.api_app import api_app
from tests.unit.logged import said_by
from tests.unit.test_model_reload import Snapshots, snapshot, worker
from tests.unit.test_touchpoint_agent import Handler, Observer, Stream, Topic, batches_of, event

PUBLISHED = {MODEL: (7, snapshot(LinUCBOffers(DIMENSION).to_dict())),
             RISK: (3, snapshot(ChurnRisk().to_dict()))}  # fmt: skip


@dataclass
class Gated(Snapshots):
    """Snapshots that cannot be read before ``opened`` is set (Redis slow, or hanging)."""

    opened: asyncio.Event = field(default_factory=asyncio.Event)

    async def version(self, name: str) -> int:
        await self.opened.wait()
        return await super().version(name)


async def run_agent(handler: Handler, stream: Stream,
                    models_ready: Callable[[], Awaitable[object]]) -> None:  # fmt: skip
    agents: list[Any] = []

    def agent(source: Any, name: str) -> Callable[[Any], Any]:
        def register(fn: Any) -> Any:
            agents.append(fn)
            return fn

        return register

    app = SimpleNamespace(agent=agent)
    register_touchpoint_agent(app, None, Outlets(Topic(), Topic(), Topic(), Topic(), Topic()),
                              handler, Observer(), retry_backoff_max=0.01,  # type: ignore[arg-type]
                              models_ready=models_ready, batches_of=batches_of)  # fmt: skip
    await asyncio.wait_for(agents[0](stream), 10)


def versions_seen(moments: Any) -> tuple[list[tuple[int, int]], Handler]:
    """A handler that notes the models' versions each batch is decided with."""
    seen: list[tuple[int, int]] = []

    def answer(records: list[SourceRecord]) -> BatchResult:
        seen.append((moments.holder.version, moments.risk.version))
        return BatchResult(results=[("web_click", "ok")] * len(records))

    return seen, Handler(answer)


async def test_a_workers_first_batch_waits_for_the_published_models() -> None:
    snapshots = Gated(dict(PUBLISHED))
    moments = worker(snapshots)
    reloads = ModelReloads(moments)
    seen, handler = versions_seen(moments)
    loop = asyncio.get_running_loop()
    loop.call_later(0.2, snapshots.opened.set)  # Redis answers a little late
    reloading = asyncio.create_task(reloads.keep_fresh(every_s=60))
    try:
        started = time.monotonic()
        await run_agent(handler, Stream([[event(0)], [event(1)]]), reloads.first_tried)
    finally:
        reloading.cancel()
    assert time.monotonic() - started >= 0.15
    assert seen == [(7, 3), (7, 3)]  # never the empty bandit and the baseline risk


@pytest.mark.parametrize(
    "found",
    [
        {MODEL: StoreUnavailable("ConnectionError"), RISK: StoreUnavailable("ConnectionError")},
        {MODEL: (9, '{"model": {"format": 99}}'), RISK: (4, "not json")},  # unreadable
        {},  # nothing published yet
    ],
    ids=["redis-down", "unreadable", "none-published"],
)
async def test_a_first_load_that_finds_nothing_to_load_holds_nothing_up(
    found: dict[str, tuple[int, str] | Exception], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(model_reload, "FIRST_LOAD_WAIT_S", 30.0)
    moments = worker(Snapshots(found))
    reloads = ModelReloads(moments)
    seen, handler = versions_seen(moments)
    reloading = asyncio.create_task(reloads.keep_fresh(every_s=60))
    try:
        started = time.monotonic()
        await run_agent(handler, Stream([[event(0)]]), reloads.first_tried)
    finally:
        reloading.cancel()
    assert time.monotonic() - started < 5  # not the 30 s bound: the first check is over
    assert seen == [(0, 0)]  # the models held, as before; reloaded by the next checks


async def test_a_first_load_that_hangs_holds_the_first_batch_up_a_few_seconds_at_most(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(model_reload, "FIRST_LOAD_WAIT_S", 0.3)
    snapshots = Gated(dict(PUBLISHED))  # Redis taking the request and never answering
    moments = worker(snapshots)
    reloads = ModelReloads(moments)
    seen, handler = versions_seen(moments)
    reloading = asyncio.create_task(reloads.keep_fresh(every_s=0.05))
    try:
        with caplog.at_level(logging.WARNING, logger="streams.model_reload"):
            started = time.monotonic()
            await run_agent(handler, Stream([[event(0)], [event(1)]]), reloads.first_tried)
        assert 0.25 <= time.monotonic() - started < 5
        assert seen == [(0, 0), (0, 0)]  # on with the models held, waiting once only
        assert [r.getMessage() for r in said_by(caplog, "streams.model_reload")] == [
            "the model snapshots could not be loaded within 0.3 s; deciding with the models "
            "held until they are"
        ]
        snapshots.opened.set()  # Redis answers again: the reloads go on as before
        for _ in range(100):
            if moments.holder.version == 7:
                break
            await asyncio.sleep(0.02)
        assert (moments.holder.version, moments.risk.version) == (7, 3)
    finally:
        reloading.cancel()


# --- the API ---------------------------------------------------------------------


class Producer:
    """Stands in for the API's Kafka producer (no broker here)."""

    def __init__(self, **options: Any) -> None:
        pass

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


class Hub:
    """Stands in for the API's alert hub: ready at once, the broker answering."""

    def __init__(self, *args: Any) -> None:
        self.ready = asyncio.Event()
        self.also_forget: list[Any] = []
        self.erased_lately: set[str] = set()  # the customers erased lately: none

    async def start(self) -> None:
        self.ready.set()

    async def stop(self) -> None:
        pass

    def last_answer(self) -> float:
        return time.time()

    def close_all(self) -> None:
        pass

    def held_s(self) -> float:
        return 0.0


class NoOutboxes:
    """The API process's outbox, keeping nothing (feature_store.outbox)."""

    def hold(self, *_: Any) -> list[Any]:
        return []

    async def renew(self, *_: Any) -> None:
        pass

    async def processes(self) -> list[str]:
        return []

    async def claim(self, *_: Any) -> list[str]:
        return []

    async def release(self, *_: Any) -> None:
        pass

    async def size(self, *_: Any) -> int:
        return 0

    async def retire(self, *_: Any, **__: Any) -> None:
        pass


class NoDecisions:
    async def publishable(self, pairs: Any, shown: Any = ()) -> list[bool]:
        return [True] * len(pairs)


@dataclass
class ApiStore:
    models: Snapshots
    outboxes: NoOutboxes = field(default_factory=NoOutboxes)
    decisions: NoDecisions = field(default_factory=NoDecisions)

    async def erased(self, customer_ids: Any) -> list[bool]:
        return [False] * len(customer_ids)

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        pass


@pytest_asyncio.fixture(loop_scope="function")
async def api_on(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Callable[..., Any]]:
    """``api_on(snapshots)``: the API process started on those snapshots, as a client."""
    monkeypatch.setattr(server, "AIOKafkaProducer", Producer)
    monkeypatch.setattr(server, "AlertHub", Hub)
    clients: list[TestClient[Any, Any]] = []

    async def start(snapshots: Snapshots) -> TestClient[Any, Any]:
        store = cast(FeatureStore, ApiStore(snapshots))
        client: TestClient[Any, Any] = TestClient(TestServer(server.create_api(Settings(),
                                                                               store)))  # fmt: skip
        clients.append(client)
        await client.start_server()  # returns once the app has started
        return client

    yield start
    for client in clients:
        await client.close()


def api_of(client: TestClient[Any, Any]) -> server.Api:
    app = cast(TestServer, client.server).app
    return app[server.API_KEY]


async def test_the_api_serves_once_the_published_models_are_loaded(
    api_on: Callable[..., Any],
) -> None:
    snapshots = Gated(dict(PUBLISHED))
    asyncio.get_running_loop().call_later(0.2, snapshots.opened.set)  # Redis a little late
    client = await api_on(snapshots)
    api = api_of(client)  # its first request is decided with the published models
    assert (api.policy.model_version, api.risk.version) == ("linucb-v7", 3)
    reply = await client.get("/readyz")
    assert reply.status == 200 and (await reply.json())["status"] == "ready"


async def test_the_api_is_not_ready_while_its_first_load_hangs(
    api_on: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(model_reload, "FIRST_LOAD_WAIT_S", 0.2)
    snapshots = Gated(dict(PUBLISHED))
    client = await api_on(snapshots)  # serving after the bound, with the models it holds
    reply = await client.get("/readyz")
    assert reply.status == 503 and (await reply.json())["status"] == "not_ready"
    snapshots.opened.set()
    for _ in range(100):
        if (await client.get("/readyz")).status == 200:
            break
        await asyncio.sleep(0.02)
    assert (await client.get("/readyz")).status == 200
    assert api_of(client).policy.model_version == "linucb-v7"


async def test_readyz_waits_for_the_first_load_of_the_models() -> None:
    ready = asyncio.Event()
    ready.set()  # the alert hub has read the erasures
    reloads = ModelReloads(worker(Snapshots(dict(PUBLISHED))))
    app = api_app(alerts=SimpleNamespace(ready=ready), store=ApiStore(Snapshots()),
                  kafka=KafkaHealth(time.time), reloads=reloads)  # fmt: skip
    async with TestClient(TestServer(app)) as client:
        reply = await client.get("/readyz")
        answer = await reply.json()
        assert reply.status == 503 and answer["status"] == "not_ready"
        assert answer["checks"]["models"] == "starting: loading the snapshots", answer
        assert answer["checks"]["alerts"] == "ok"
        await reloads.check()
        reply = await client.get("/readyz")
        answer = await reply.json()
        assert reply.status == 200 and answer["status"] == "ready"
        assert answer["checks"]["models"] == answer["checks"]["alerts"] == "ok"


async def test_readyz_names_the_alert_topics_it_still_reads() -> None:
    reloads = ModelReloads(worker(Snapshots(dict(PUBLISHED))))
    await reloads.check()
    app = api_app(alerts=SimpleNamespace(ready=asyncio.Event()), store=ApiStore(Snapshots()),
                  kafka=KafkaHealth(time.time), reloads=reloads)  # fmt: skip
    async with TestClient(TestServer(app)) as client:
        reply = await client.get("/readyz")
        answer = await reply.json()
        assert reply.status == 503 and answer["status"] == "not_ready"
        assert answer["checks"]["alerts"] == "starting: reading the alert topics", answer
