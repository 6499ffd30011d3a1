"""The API's writes to Kafka, and its rate limit, at the routes: a write Kafka refuses is
a 503 the client can retry (never a 500, never a 202 for records Kafka does not have),
an accepted write is answered only once Kafka has it, and a key over its rate gets a 429.
The writes on real Kafka are in ``tests/integration``."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiokafka.errors import KafkaConnectionError

from feature_store.records import ErasureReceipt
from streams.api.kafka_health import KafkaHealth
from streams.api.server import API_KEY
from streams.settings import Settings
from tests.unit.api_app import KEYS, SHOP, api_app

AUTH = {"Authorization": "Bearer backend-key"}
EVENT = {"type": "web_click", "event_id": "e1", "customer_id": "c1",
         "ts": "2026-01-01T00:00:00Z", "page": "/"}  # fmt: skip
OUTCOME = {"decision_id": "d1", "customer_id": "c1", "offer_id": "o1", "outcome": "shown",
           "ts": "2026-01-01T00:00:00Z"}  # fmt: skip


class Publisher:
    """The API's publisher, whose deliveries the test settles: each ``publish`` hands
    back a future kept in ``deliveries``."""

    def __init__(self, fail_at_once: bool = False, full: bool = False) -> None:
        self.fail_at_once = fail_at_once
        self.full = full  # too much waits for Kafka: a publication would be refused
        self.deliveries: list[asyncio.Future[None]] = []

    def would_refuse(self, size: int) -> bool:
        return self.full

    def publish(self, topic: str, records: Any, linger: bool = True) -> asyncio.Future[None]:
        if self.fail_at_once:
            raise KafkaConnectionError("no broker")
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.deliveries.append(delivery)
        return delivery


def app_with(publisher: Publisher) -> Any:
    return api_app(publisher=publisher)


async def asked(publisher: Publisher) -> None:
    for _ in range(500):
        if publisher.deliveries:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("nothing was published")


@pytest.mark.parametrize(("path", "item"), [("/v1/events", EVENT), ("/v1/outcomes", OUTCOME)])
@pytest.mark.parametrize("how", ["refused at once", "delivery failed"])
async def test_a_write_kafka_refuses_is_a_503_to_retry(path: str, item: Any, how: str) -> None:
    publisher = Publisher(fail_at_once=how == "refused at once")
    async with TestClient(TestServer(app_with(publisher))) as client:
        reply = asyncio.create_task(client.post(path, json=item, headers=AUTH))
        if how == "delivery failed":
            await asked(publisher)
            publisher.deliveries[0].set_exception(KafkaConnectionError("the broker went away"))
        answer = await reply
        assert answer.status == 503, await answer.text()
        assert (await answer.json())["error"] == "kafka_unavailable"
        assert answer.headers["Retry-After"] == "5"  # as every answer asking for a retry


@pytest.mark.parametrize(("path", "item"), [("/v1/events", EVENT), ("/v1/outcomes", OUTCOME)])
async def test_a_write_kafka_does_not_acknowledge_in_time_is_a_503_to_retry(
    path: str, item: Any
) -> None:
    """With the broker away, a write waited for the producer's own timeout (40 s), and
    the writes queued behind it longer still: callers and proxies gave up first."""
    publisher = Publisher()
    settings = Settings(api_keys=KEYS, api_cors_origins=SHOP, api_kafka_timeout_s=0.2)
    app = api_app(settings, publisher=publisher)
    async with TestClient(TestServer(app)) as client:
        started = asyncio.get_running_loop().time()
        answer = await client.post(path, json=item, headers=AUTH)
        assert answer.status == 503, await answer.text()
        assert asyncio.get_running_loop().time() - started < 5
        body = await answer.json()
        assert body["error"] == "kafka_unavailable" and "in time" in body["message"]
        assert answer.headers["Retry-After"] == "5"
        (delivery,) = publisher.deliveries
        assert not delivery.cancelled()  # handed over: it may still be written


@pytest.mark.parametrize(("path", "item"), [("/v1/events", EVENT), ("/v1/outcomes", OUTCOME)])
async def test_a_write_is_answered_202_only_once_kafka_has_it(path: str, item: Any) -> None:
    publisher = Publisher()
    async with TestClient(TestServer(app_with(publisher))) as client:
        reply = asyncio.create_task(client.post(path, json=item, headers=AUTH))
        await asked(publisher)
        await asyncio.sleep(0.05)  # time enough to answer, were it not waiting
        assert not reply.done()
        publisher.deliveries[0].set_result(None)
        assert (await reply).status == 202


class Producer:
    def __init__(self, fails: bool, hangs: bool = False) -> None:
        self.fails, self.hangs = fails, hangs

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[Any]:
        delivery: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.hangs:  # the broker away: never acknowledged
            return delivery
        if self.fails:
            delivery.set_exception(KafkaConnectionError("the broker went away"))
        else:
            delivery.set_result(SimpleNamespace(partition=0, offset=7))
        return delivery


@pytest.mark.parametrize(("fails", "hangs"), [(True, False), (False, False), (False, True)])
async def test_an_erasure_whose_record_kafka_refuses_is_a_503_to_retry(
    fails: bool, hangs: bool
) -> None:
    """Erased from Redis, but the record that tells the other processes (and a rebuild)
    is not on Kafka (refused, or not acknowledged in time): the client must ask again
    (erasing again is harmless)."""

    async def erase(customer_id: str, replicas: int, within_ms: int) -> ErasureReceipt:
        assert replicas == 0  # not waited for, by default
        return ErasureReceipt(subject="s", keys_removed=3, kinds=["profile"], blocked=True)

    health: list[bool] = []
    app = api_app(
        store=SimpleNamespace(erase=erase),
        alerts=SimpleNamespace(forget=lambda customer_id: None),
        producer=Producer(fails, hangs),
        kafka=SimpleNamespace(sent=lambda ok: health.append(ok)),
    )
    app[API_KEY].settings = Settings(api_keys=KEYS, api_cors_origins=SHOP, api_kafka_timeout_s=0.2)
    async with TestClient(TestServer(app)) as client:
        answer = await client.delete("/v1/customers/c1", headers=AUTH)
        body = await answer.json()
    if fails or hangs:
        assert (answer.status, body["error"], health) == (503, "kafka_unavailable", [False])
        assert answer.headers["Retry-After"] == "5"
    else:
        assert answer.status == 200 and body["erasure_record"]["offset"] == 7 and health == [True]


async def test_a_key_refused_for_its_scope_takes_from_its_rate_too() -> None:
    """A key sent where its scope does not reach was answered 403 however fast it came:
    the per-key rate left it out (a page key's: its visitor's rate)."""
    settings = Settings(api_keys=KEYS, api_cors_origins=SHOP, api_visitor_burst=1,
                        api_visitor_rate_per_s=0.5)  # fmt: skip
    app = api_app(settings, publisher=Publisher(fail_at_once=True))
    pages = {"X-API-Key": "page-key", "Origin": SHOP}  # recommend and outcomes only
    async with TestClient(TestServer(app)) as client:
        first = await client.post("/v1/events", json=EVENT, headers=pages)
        assert first.status == 403 and (await first.json())["error"] == "forbidden"
        second = await client.post("/v1/events", json=EVENT, headers=pages)
        body = await second.json()
        assert second.status == 429 and body["error"] == "rate_limited", body
        assert "pages" in body["message"]


async def test_a_key_over_its_rate_is_answered_429_with_when_to_retry() -> None:
    settings = Settings(api_keys=KEYS, api_cors_origins=SHOP, api_burst=1, api_rate_per_s=0.5)
    app = api_app(settings, publisher=Publisher(fail_at_once=True))
    async with TestClient(TestServer(app)) as client:
        first = await client.post("/v1/events", json=EVENT, headers=AUTH)
        assert first.status == 503  # let through (and refused by Kafka)
        second = await client.post("/v1/events", json=EVENT, headers=AUTH)
        body = await second.json()
        assert second.status == 429 and body["error"] == "rate_limited"
        assert second.headers["Retry-After"] == "2"
        assert body["details"] == [{"retry_after_s": 2}]  # the same, in the body


@pytest.mark.parametrize(("path", "item"), [("/v1/events", EVENT), ("/v1/outcomes", OUTCOME)])
async def test_with_kafka_down_an_erased_customers_items_are_a_503_as_anyones(
    path: str, item: Any
) -> None:
    """Nothing of an erased customer is written; but a 202 at once, where anyone else's
    write waits and fails, told a web page's key (which may post outcomes) who was
    erased while Kafka was away."""

    async def all_erased(customer_ids: Any) -> list[bool]:
        return [True] * len(customer_ids)

    # Kafka away (no fetch answered for long); Kafka up but the publisher full, as a
    # write would find it while Kafka is slow; Kafka up and room to write
    for answered, full, status in ((lambda: 0.0, False, 503), (time.time, True, 503),
                                   (time.time, False, 202)):  # fmt: skip
        publisher = Publisher(full=full)
        app = api_app(publisher=publisher, store=SimpleNamespace(erased=all_erased),
                      kafka=KafkaHealth(answered))  # fmt: skip
        async with TestClient(TestServer(app)) as client:
            response = await client.post(path, json=item, headers=AUTH)
            assert response.status == status, await response.text()
        assert publisher.deliveries == []  # nothing written either way
