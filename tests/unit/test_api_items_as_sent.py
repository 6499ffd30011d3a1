"""Items posted to the API are judged one by one as the workers judge Kafka records, and
go to Kafka as sent: a number JSON allows but a float does not hold, in a field the
contract does not know, is no reason to refuse; a key given twice is refused, as the
workers refuse it; a body that is not UTF-8 is refused."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from schemas import InvalidEvent, decode_touchpoint
from tests.unit.api_app import api_app

AUTH = {"Authorization": "Bearer backend-key", "Content-Type": "application/json"}
CLICK = (b'{"type": "web_click", "event_id": "%s", "customer_id": "c1",'
         b' "ts": "2026-01-01T00:00:00Z", "page": "/"%s}')  # fmt: skip


class Publisher:
    """Takes every write at once, and keeps what it was given."""

    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes]] = []

    def publish(self, topic: str, records: Any, linger: bool = True) -> asyncio.Future[None]:
        self.records += records
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


async def post(body: bytes) -> tuple[int, Any, Publisher]:
    publisher = Publisher()
    app = api_app(publisher=publisher)
    async with TestClient(TestServer(app)) as client:
        reply = await client.post("/v1/events", data=body, headers=AUTH)
        return reply.status, await reply.json(), publisher


async def test_items_go_to_kafka_as_sent_with_what_the_contract_does_not_know() -> None:
    first = CLICK % (b"e1", b"")
    second = CLICK % (b"e2", b', "vendor": {"score": 1e400, "tags": [ "a" ]}')
    status, body, publisher = await post(b"[ " + first + b" ,\n" + second + b" ]")
    assert status == 202, body
    assert [value for _, value in publisher.records] == [first, second]
    assert decode_touchpoint(second).event_id == "e2"  # as a worker takes it


@pytest.mark.parametrize(
    ("extra", "field"),
    [(b', "type": "email", "action": "sent"', "$.type"), (b', "page": 5', "$.page")],
)
async def test_a_key_given_twice_is_judged_as_the_workers_judge_it(
    extra: bytes, field: str
) -> None:
    item = CLICK % (b"e1", extra)
    with pytest.raises(InvalidEvent):
        decode_touchpoint(item)
    status, body, publisher = await post(b"[" + CLICK % (b"e0", b"") + b"," + item + b"]")
    assert status == 422 and publisher.records == []
    (error,) = body["details"]
    assert error["index"] == 1 and field in error["reason"]


async def test_an_item_naming_a_key_twice_is_refused_with_the_key_named() -> None:
    """Both ids fit, so each alone would be taken; together they are ambiguous: msgspec
    takes the last (the record's Kafka key) and a reader of the topic may take the first."""
    item = CLICK % (b"e1", b', "customer_id": "decoy"')
    status, body, publisher = await post(b"[" + CLICK % (b"e0", b"") + b"," + item + b"]")
    assert status == 422 and body["error"] == "invalid_events" and publisher.records == []
    (error,) = body["details"]
    assert error["index"] == 1 and error["reason"].endswith("- at `$.customer_id`"), error
    assert "key given twice" in error["reason"]


async def test_a_body_that_is_not_utf8_is_refused() -> None:
    status, body, publisher = await post(CLICK % (b"e1", b', "note": "caf\xe9"'))
    assert status == 400 and body["error"] == "malformed_json" and "UTF-8" in body["message"]
    assert publisher.records == []


async def test_a_body_with_half_a_surrogate_pair_is_refused_saying_so() -> None:
    """A string cut within an emoji (as JavaScript can cut one) was called a truncated input."""
    status, body, publisher = await post(CLICK % (b"e1", b', "note": "Love it \\ud83d"'))
    assert status == 400 and body["error"] == "malformed_json" and publisher.records == []
    assert "half of a UTF-16 surrogate pair" in body["message"], body


class Producer:
    """What KeyedPublisher asks of a producer before a record is sent: nothing is sent
    in these tests, and asking would fail them."""

    async def partitions_for(self, topic: str) -> set[int]:
        raise AssertionError("nothing should reach Kafka")


async def test_an_item_too_large_for_a_kafka_record_is_a_413_naming_it_and_kafka_stays_up() -> None:
    """Within the body limit, yet past what Kafka takes in one record: it was a 503 "retry"
    for ever, and /readyz said Kafka was down (anyone with a page key could keep it so)."""
    from streams.api.publisher import MAX_RECORD_BYTES, KeyedPublisher

    said: list[bool] = []
    publisher = KeyedPublisher(Producer(), sent=said.append)  # type: ignore[arg-type]
    app = api_app(publisher=publisher)
    page = b', "note": "' + b"a" * MAX_RECORD_BYTES + b'"'
    body = b"[" + CLICK % (b"e1", b"") + b"," + CLICK % (b"e2", page) + b"]"
    async with TestClient(TestServer(app)) as client:
        reply = await client.post("/v1/events", data=body, headers=AUTH)
        assert reply.status == 413
        answer = await reply.json()
    assert answer["error"] == "record_too_large" and answer["details"][0]["index"] == 1
    item = CLICK % (b"e2", page)  # the record's size: the item as sent, and its key
    assert answer["details"][0]["bytes"] == len(item) + len(b"c1")
    assert f"a Kafka record of {len(item) + 2} bytes" in answer["message"]
    assert said == []  # not a word to the readiness check


async def test_an_item_too_large_is_named_where_it_was_sent_after_erased_ones_left_out() -> None:
    """The items of erased customers are left out before the write: the index an error
    names is still the item's place in the request, not among those written."""
    from types import SimpleNamespace

    from streams.api.publisher import MAX_RECORD_BYTES, KeyedPublisher

    async def erased(customer_ids: Any) -> list[bool]:
        return [c == "c-gone" for c in customer_ids]

    publisher = KeyedPublisher(Producer(), sent=lambda ok: None)  # type: ignore[arg-type]
    app = api_app(publisher=publisher, store=SimpleNamespace(erased=erased))
    gone = (CLICK % (b"e0", b"")).replace(b'"c1"', b'"c-gone"')
    page = b', "note": "' + b"a" * MAX_RECORD_BYTES + b'"'
    body = b"[" + gone + b"," + CLICK % (b"e1", b"") + b"," + CLICK % (b"e2", page) + b"]"
    async with TestClient(TestServer(app)) as client:
        reply = await client.post("/v1/events", data=body, headers=AUTH)
        assert reply.status == 413
        answer = await reply.json()
    assert answer["details"][0]["index"] == 2, answer
