"""The simulator through a Kafka outage: touchpoints the producer gave up are sent again
until Kafka takes them, and a run reports only what Kafka acknowledged (a soak lost 210
of 1,222 touchpoints to a 50 s outage, each logged as 'Future exception was never
retrieved', while ``simulate`` counted them all as sent)."""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError, NodeNotReadyError

from schemas import decode_touchpoint
from streams.simulation import producer as simulation
from streams.simulation.delivery import Deliveries
from tests.unit.logged import said_by

MADE: list[FlakyProducer] = []


class FlakyProducer:
    """Fails the delivery of the next records with ``failures`` (None: Kafka takes it);
    ``written`` holds what Kafka took."""

    def __init__(self, *failures: BaseException | None, **options: Any) -> None:
        self.failures = list(failures)
        self.written: list[bytes] = []
        MADE.append(self)

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def flush(self) -> None:
        await asyncio.sleep(0.01)

    async def send(self, topic: str, value: bytes, *, key: bytes) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        delivered: asyncio.Future[None] = loop.create_future()
        failure = self.failures.pop(0) if self.failures else None
        if isinstance(failure, KafkaTimeoutError):  # no room in the producer's buffer
            raise failure
        if failure is None:
            self.written.append(value)
            loop.call_soon(delivered.set_result, None)
        else:
            loop.call_soon(delivered.set_exception, failure)
        return delivered


async def test_touchpoints_kafka_did_not_take_are_sent_again_and_only_those_taken_count(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    never_retrieved: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    handler = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: never_retrieved.append(context))
    flaky = functools.partial(FlakyProducer, *[NodeNotReadyError("node 1")] * 5)
    monkeypatch.setattr(simulation, "AIOKafkaProducer", flaky)
    try:
        with caplog.at_level(logging.INFO, "streams.simulation.delivery"):
            run = await simulation.simulate("kafka:9092", "touchpoints", customers=5,
                                            rate=10_000, count=20)  # fmt: skip
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(handler)
    ids = [decode_touchpoint(v).event_id for v in MADE[-1].written]
    assert len(set(ids)) == 20 and run.sent == 20
    assert never_retrieved == []
    said = [r.getMessage() for r in said_by(caplog, "streams.simulation.delivery")]
    assert len(said) == 2, said  # the outage once, and once its end
    assert said[0].startswith("Kafka did not take touchpoints (NodeNotReadyError")
    assert said[1] == (
        "Kafka takes touchpoints again; 5 deliveries failed in the outage, each sent again"
    )


async def test_a_full_buffer_waits_and_a_refusal_for_good_is_counted_not_sent_again() -> None:
    producer = FlakyProducer(KafkaTimeoutError(), MessageSizeTooLargeError("too large"))
    deliveries = Deliveries(producer, "outcomes", retry_after_s=0.01)
    await deliveries.send("outcomes", b"a", b"cust-1")
    await deliveries.send("outcomes", b"b", b"cust-2")
    await deliveries.settle()
    assert producer.written == [b"b"]
    assert deliveries.acknowledged == {"outcomes": 1}
    assert deliveries.refused == {"outcomes": 1} and deliveries.sent == 1


async def test_records_are_counted_by_topic_once_acknowledged() -> None:
    producer = FlakyProducer(NodeNotReadyError("gone"), NodeNotReadyError("gone"))
    deliveries = Deliveries(producer, retry_after_s=0.01)
    await deliveries.send("outcomes", b"shown", b"cust-1")
    await deliveries.send("touchpoints", b"order", b"cust-1")
    assert deliveries.sent == 0
    await deliveries.settle()
    assert sorted(producer.written) == [b"order", b"shown"]
    assert deliveries.acknowledged == {"outcomes": 1, "touchpoints": 1}
