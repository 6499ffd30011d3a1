"""``DELETE /v1/customers/{id}`` when Redis did not answer the erasure: sent and not
answered in time (it may have run), it errs on the side of erasing and writes the
erasure record, saying so; not reached (it did not run), it writes nothing."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from feature_store import ErasureUnknown, StoreUnavailable
from schemas import decode_erasure
from tests.unit.api_app import api_app

BACKEND = {"Authorization": "Bearer backend-key"}


class Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[Any]:
        self.sent.append((topic, value, key))
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(SimpleNamespace(partition=0, offset=len(self.sent) - 1))
        return done


def _app(failure: Exception, producer: Producer, forgotten: list[str]) -> Any:
    async def erase(customer_id: str, **_: Any) -> None:
        raise failure

    alerts = SimpleNamespace(erased_lately=set(), forget=forgotten.append)
    return api_app(store=SimpleNamespace(erase=erase), producer=producer, alerts=alerts)


async def test_an_erasure_redis_may_have_run_is_recorded_and_said_so() -> None:
    producer, forgotten = Producer(), []
    app = _app(ErasureUnknown("TimeoutError: no reply", subject="ab12"), producer, forgotten)
    async with TestClient(TestServer(app)) as client:
        reply = await client.delete("/v1/customers/c1", headers=BACKEND)
        body = await reply.json()
    assert reply.status == 503 and body["error"] == "store_unavailable"
    assert "may have been applied" in body["message"]
    assert "erasure record was written" in body["message"]
    assert reply.headers["Retry-After"] == "1"
    ((topic, value, key),) = producer.sent
    record = decode_erasure(value)
    assert topic.endswith("customer-erasures") and key == b"c1"
    assert (record.customer_id, record.subject, record.keys_removed) == ("c1", "ab12", 0)
    assert forgotten == ["c1"]


@pytest.mark.parametrize("failure", [StoreUnavailable("cannot connect to Redis: refused")])
async def test_an_erasure_redis_did_not_take_writes_no_record(failure: Exception) -> None:
    producer, forgotten = Producer(), []
    async with TestClient(TestServer(_app(failure, producer, forgotten))) as client:
        reply = await client.delete("/v1/customers/c1", headers=BACKEND)
        body = await reply.json()
    assert reply.status == 503 and body["error"] == "store_unavailable"
    assert "may have been applied" not in body["message"]
    assert producer.sent == [] and forgotten == []
