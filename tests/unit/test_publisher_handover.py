"""A publication whose hand-over to the producer fails part way: the callers whose
records were all handed over follow their batches; the others fail. (The real producer
and broker are in tests/integration/test_recommender.py; here a stand-in producer
refuses one partition's batch, which a real one does only when its buffer stays full.)"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.errors import KafkaTimeoutError
from aiokafka.partitioner import DefaultPartitioner

from streams.api.publisher import KeyedPublisher, PublisherFull

_partitioner = DefaultPartitioner()


def key_on(partition: int) -> bytes:
    return next(k for i in range(100) if _partitioner(k := b"c%d" % i, [0, 1], [0, 1]) == partition)


class Batch:
    def __init__(self) -> None:
        self.keys: list[bytes] = []

    def append(self, key: bytes, value: bytes, timestamp: None) -> object:
        self.keys.append(key)
        return object()

    def record_count(self) -> int:
        return len(self.keys)

    def close(self) -> None:
        pass


class RefusingProducer:
    """Takes partition 0's batches and delivers them; refuses partition 1's."""

    def __init__(self) -> None:
        self.delivered: list[bytes] = []

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1}

    def create_batch(self) -> Batch:
        return Batch()

    async def send_batch(self, batch: Batch, topic: str, partition: int) -> asyncio.Future[Any]:
        if partition == 1:
            raise KafkaTimeoutError("no room for the batch")
        delivery: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.delivered.extend(batch.keys)
        delivery.set_result(None)
        return delivery


async def test_callers_whose_records_were_handed_over_are_not_failed_by_others() -> None:
    producer = RefusingProducer()
    publisher = KeyedPublisher(producer)  # type: ignore[arg-type]
    first = publisher.publish("t", [(key_on(0), b"a")])
    second = publisher.publish("t", [(key_on(1), b"b")])
    mixed = publisher.publish("t", [(key_on(0), b"c"), (key_on(1), b"d")])
    answers = await asyncio.wait_for(
        asyncio.gather(first, second, mixed, return_exceptions=True), 5
    )
    assert answers[0] is None, answers
    assert all(isinstance(a, KafkaTimeoutError) for a in answers[1:]), answers
    assert producer.delivered == [key_on(0), key_on(0)]


class AwayProducer(RefusingProducer):
    """Takes every batch, and acknowledges none until told: a broker gone away."""

    def __init__(self) -> None:
        super().__init__()
        self.deliveries: list[asyncio.Future[Any]] = []

    async def send_batch(self, batch: Batch, topic: str, partition: int) -> asyncio.Future[Any]:
        delivery: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.deliveries.append(delivery)
        return delivery


async def test_while_kafka_is_away_what_waits_for_it_is_bounded() -> None:
    """Answers go on while Kafka is away; what they publish waits, up to a bound, and
    past it publications fail at once (their callers count them) rather than fill the
    process's memory."""
    producer = AwayProducer()
    told: list[bool] = []
    record = len(key_on(0)) + 1  # the bytes of one record here (key and value)
    publisher = KeyedPublisher(producer, linger_s=0.001, sent=told.append,  # type: ignore[arg-type]
                               max_unsettled=10 * record)  # fmt: skip
    waiting = [publisher.publish("t", [(key_on(0), b"x"), (key_on(1), b"y")]) for _ in range(5)]
    refused = publisher.publish("t", [(key_on(0), b"z")])
    assert refused.done() and isinstance(refused.exception(), PublisherFull)
    assert told == [False] and not any(w.done() for w in waiting)
    await asyncio.sleep(0.05)  # handed over, not acknowledged: still held
    assert isinstance(publisher.publish("t", [(key_on(0), b"v")]).exception(), PublisherFull)
    for delivery in producer.deliveries:  # Kafka is back
        delivery.set_result(None)
    await asyncio.wait_for(asyncio.gather(*waiting), 5)
    again = publisher.publish("t", [(key_on(0), b"z")] * 10)  # room again, all of it
    assert not again.done()
    await asyncio.sleep(0.05)
    producer.deliveries[-1].set_result(None)
    await asyncio.wait_for(again, 5)
    # one publication larger than the bound alone is not refused (nothing else waits)
    alone = publisher.publish("t", [(key_on(0), b"z")] * 30)
    await asyncio.sleep(0.05)
    assert not alone.done()
    producer.deliveries[-1].set_result(None)
    await asyncio.wait_for(alone, 5)
