"""/readyz says Kafka is down while it is, from what the API last saw of it: the alert
fan-out's fetches and the producer's sends."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from streams.api.alerts import AlertHub
from streams.api.kafka_health import KafkaHealth
from streams.api.publisher import KeyedPublisher
from streams.api.screen_erasures import CustomerRefs
from tests.unit.api_app import api_app


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def health(answered: float | None, clock: Clock) -> KafkaHealth:
    return KafkaHealth(lambda: answered, stale_s=10, clock=clock)


def test_kafka_is_connecting_until_it_first_answers() -> None:
    assert health(None, Clock()).check() == "connecting"


def test_kafka_is_down_once_its_fetches_go_unanswered() -> None:
    clock = Clock()
    kafka = health(clock.now, clock)
    assert kafka.check() == "ok"
    clock.now += 10
    assert kafka.check() == "ok"
    clock.now += 0.5
    assert kafka.check() == "down"


def test_a_failed_send_is_down_until_one_succeeds_or_it_is_old() -> None:
    clock = Clock()
    answered = [clock.now]
    kafka = KafkaHealth(lambda: answered[0], stale_s=10, clock=clock)
    kafka.sent(ok=False)
    assert kafka.check() == "down"
    kafka.sent(ok=True)
    assert kafka.check() == "ok"
    kafka.sent(ok=False)
    clock.now += 11
    answered[0] = clock.now  # fetches still answered, and no send since the failure
    assert kafka.check() == "ok"


class Store:
    async def ping(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("answered_ago", "status", "kafka"),
    [(1.0, "ready", "ok"), (60.0, "degraded", "down")],
)
async def test_readyz_reports_kafka_as_last_seen(
    answered_ago: float, status: str, kafka: str
) -> None:
    clock = Clock()
    ready = asyncio.Event()
    ready.set()
    app = api_app(
        alerts=SimpleNamespace(ready=ready),
        reloads=SimpleNamespace(tried=ready),  # the models' first load, tried
        store=Store(),
        kafka=health(clock.now - answered_ago, clock),
    )
    async with TestClient(TestServer(app)) as client:
        reply = await client.get("/readyz")
        assert reply.status == 200
        assert await reply.json() == {
            "status": status,
            "checks": {"kafka": kafka, "redis": "ok", "alerts": "ok", "models": "ok"},
        }


async def test_readyz_answers_within_a_probe_timeout_while_redis_is_frozen() -> None:
    """A Redis that accepted the connection and answers nothing (a socket on this host
    that never replies): the store's ping gives up in time."""
    from feature_store import FeatureStore, StoreConfig

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # reads all there is, answers nothing

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    store = FeatureStore.from_url(f"redis://127.0.0.1:{port}", StoreConfig(b"unit", "unit"))
    clock = Clock()
    ready = asyncio.Event()
    ready.set()
    app = api_app(alerts=SimpleNamespace(ready=ready), reloads=SimpleNamespace(tried=ready),
                  store=store, kafka=health(clock.now - 1.0, clock))  # fmt: skip
    try:
        async with TestClient(TestServer(app)) as client:
            started = time.monotonic()
            reply = await client.get("/readyz")
            body = await reply.json()
            took = time.monotonic() - started
    finally:
        await store.close()
        server.close()
    assert reply.status == 200  # still in the load balancer: it answers default offers
    assert body == {
        "status": "degraded",
        "checks": {"kafka": "ok", "redis": "down", "alerts": "ok", "models": "ok"},
    }
    assert took < 2.5, took  # Kubernetes' probe here times out after 3 s


async def test_the_hub_has_no_answer_before_it_connects() -> None:
    async def nobody_erased(customer_ids: Any) -> list[bool]:
        return [False] * len(customer_ids)

    assert (
        AlertHub("127.0.0.1:9", "a", "b", nobody_erased, CustomerRefs(b"unit")).last_answer()
        is None
    )


class Unreachable:
    """A producer whose broker cannot be reached."""

    async def partitions_for(self, topic: str) -> set[int]:
        raise KafkaConnectionError("no broker")


async def test_the_publisher_tells_of_a_failed_send() -> None:
    outcomes: list[bool] = []
    publisher = KeyedPublisher(cast(AIOKafkaProducer, Unreachable()), 0.0, outcomes.append)
    with pytest.raises(KafkaConnectionError):
        await publisher.publish("decisions", [(b"c-1", b"{}")], linger=False)
    assert outcomes == [False]


async def test_readyz_says_redis_is_down_when_its_client_fails_otherwise() -> None:
    """redis-py's cluster client, a master lost, raised AttributeError from its PING
    (a connection closed under it): /readyz answered 500 internal_error."""

    class Broken:
        async def ping(self) -> bool:
            raise AttributeError("'NoneType' object has no attribute 'writelines'")

    clock = Clock()
    ready = asyncio.Event()
    ready.set()
    app = api_app(alerts=SimpleNamespace(ready=ready), reloads=SimpleNamespace(tried=ready),
                  store=Broken(), kafka=health(clock.now - 1.0, clock))  # fmt: skip
    async with TestClient(TestServer(app)) as client:
        reply = await client.get("/readyz")
        assert reply.status == 200 and (await reply.json())["checks"]["redis"] == "down"
