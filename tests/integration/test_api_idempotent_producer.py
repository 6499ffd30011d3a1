"""The API's producer against a real broker: a batch it sends again after losing the
broker's acknowledgment is written once; and a partition whose numbering broke (a batch
refused for good) takes publications again, through a new producer."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import MessageSizeTooLargeError, OutOfOrderSequenceNumber
from aiokafka.producer import sender

from streams.api.decision_delivery import DecisionDelivery
from streams.api.producer_renewal import RenewingProducer
from streams.api.publisher import KeyedPublisher
from streams.api.server import api_producer
from streams.services import Services
from streams.settings import Settings
from tests.integration.conftest import consume_all


async def new_topic(bootstrap: str, **configs: str) -> str:
    topic = f"idempotence-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1, topic_configs=configs)])
    finally:
        await admin.close()
    return topic


@pytest.fixture
def acknowledgment_lost(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The broker's first answer to a produce request is lost after it wrote the batch:
    the producer sends the batch again, as it does after a timeout or a broken
    connection. Counts the answers lost."""
    lost: list[int] = []
    heard = sender.SendProduceReqHandler.handle_response

    def lose_first(self: Any, response: Any) -> Any:
        if lost:
            return heard(self, response)
        lost.append(1)
        self._to_reenqueue.extend(self._batches.values())  # as for a retriable error
        return None

    monkeypatch.setattr(sender.SendProduceReqHandler, "handle_response", lose_first)
    return lost


async def publish_twice_heard(bootstrap: str, make: Callable[[], AIOKafkaProducer]) -> int:
    """Publish three decisions with an acknowledgment lost; how many records the topic
    holds."""
    topic = await new_topic(bootstrap)
    producer = make()
    await producer.start()
    try:
        await KeyedPublisher(producer).publish(topic, [(b"c%d" % i, b"d%d" % i) for i in range(3)])
    finally:
        await producer.stop()
    return len(await consume_all(bootstrap, topic, expected=6, wait_s=3.0))


async def test_a_batch_sent_again_after_its_acknowledgment_was_lost_is_written_once(
    kafka_redis: Services, acknowledgment_lost: list[int]
) -> None:
    settings = Settings(kafka_bootstrap=kafka_redis.kafka_bootstrap)
    assert await publish_twice_heard(settings.kafka_bootstrap, lambda: api_producer(settings)) == 3
    assert acknowledgment_lost == [1]


async def test_without_idempotence_the_batch_sent_again_is_written_twice(
    kafka_redis: Services, acknowledgment_lost: list[int]
) -> None:
    """What the API did before (the fault injected does happen)."""
    bootstrap = kafka_redis.kafka_bootstrap

    def plain() -> AIOKafkaProducer:
        return AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=1)

    assert await publish_twice_heard(bootstrap, plain) == 6


@pytest.fixture
async def small_records_topic(kafka_redis: Services) -> AsyncIterator[str]:
    """A topic whose broker refuses a record of more than 2,000 bytes."""
    yield await new_topic(kafka_redis.kafka_bootstrap, **{"max.message.bytes": "2000"})


async def test_a_partition_whose_numbering_broke_takes_decisions_again(
    kafka_redis: Services, small_records_topic: str
) -> None:
    """A batch refused for good leaves a gap in the producer's numbering of its partition:
    aiokafka's producer alone fails every later batch there (OutOfOrderSequenceNumber);
    the API's starts a new producer, and the decisions that failed are sent again."""
    settings = Settings(kafka_bootstrap=kafka_redis.kafka_bootstrap)
    topic = small_records_topic
    producer = RenewingProducer(lambda: api_producer(settings))
    await producer.start()
    publisher = KeyedPublisher(producer)
    failed: list[int] = []
    delivery = DecisionDelivery(publisher, topic, failed.append, retry_after_s=0.2)
    try:
        await publisher.publish(topic, [(b"c1", b"first")])
        with pytest.raises(MessageSizeTooLargeError):
            await publisher.publish(topic, [(b"c1", b"x" * 10_000)])
        with pytest.raises(OutOfOrderSequenceNumber):  # the gap: the old producer's end
            await publisher.publish(topic, [(b"c1", b"second")])
        delivery.send([(b"c1", b"third")])  # answered decisions: sent until Kafka takes them
        records = await consume_all(settings.kafka_bootstrap, topic, expected=2, wait_s=20.0)
        assert [r.value for r in records] == [b"first", b"third"]  # type: ignore[attr-defined]
        assert producer.renewals == 1 and failed == []
    finally:
        await publisher.drain()
        await asyncio.wait_for(producer.stop(), 10)


async def test_aiokafkas_idempotent_producer_alone_stays_broken(
    kafka_redis: Services, small_records_topic: str
) -> None:
    """Why the API replaces it (aio-libs/aiokafka#1017): should this start failing, aiokafka
    renumbers by itself, and streams.api.producer_renewal may go."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka_redis.kafka_bootstrap,
                                enable_idempotence=True)  # fmt: skip
    await producer.start()
    try:
        await producer.send_and_wait(small_records_topic, b"first")
        with pytest.raises(MessageSizeTooLargeError):
            await producer.send_and_wait(small_records_topic, b"x" * 10_000)
        for _ in range(3):
            with pytest.raises(OutOfOrderSequenceNumber):
                await producer.send_and_wait(small_records_topic, b"later")
    finally:
        await producer.stop()
