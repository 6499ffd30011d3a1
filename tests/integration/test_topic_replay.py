"""Reading a topic to its end (``moments rebuild``, ``dead-letters``, ``lift``) ends, and
misses nothing still kept, however the partitions end and whatever retention deletes."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic, RecordsToDelete

from streams.control_lift import LiftPeriod
from streams.lift_report import measure_lift
from streams.services import Services
from streams.services.local_kafka import LocalKafka
from streams.settings import Settings
from streams.topic_replay import ReplayStalled, kept_from, replay
from streams.topics import ensure_topics

pytestmark = pytest.mark.integration

ENDS_WITHIN_S = 60  # a replay that has not ended by then never will


async def new_topic(bootstrap: str, partitions: int = 1) -> str:
    name = f"replay-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, replication_factor=1)])
    finally:
        await admin.close()
    return name


async def delete_before(bootstrap: str, topic: str, partition: int, offset: int) -> None:
    """What retention does: records before ``offset`` are gone."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_records({TopicPartition(topic, partition): RecordsToDelete(offset)})
    finally:
        await admin.close()


async def read_all(settings: Settings, topic: str, batch: int = 100) -> list[ConsumerRecord]:
    read: list[ConsumerRecord] = []

    async def keep(records: list[ConsumerRecord]) -> None:
        read.extend(records)

    count = await asyncio.wait_for(replay(settings, topic, keep, batch), ENDS_WITHIN_S)
    assert count == len(read)
    return read


async def test_a_partition_whose_records_all_expired_ends_the_replay(
    kafka_redis: Services,
) -> None:
    bootstrap = kafka_redis.kafka_bootstrap
    topic = await new_topic(bootstrap, partitions=2)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for _ in range(5):
            await producer.send_and_wait(topic, b"gone", partition=0)
        kept = [await producer.send_and_wait(topic, b"kept", partition=1) for _ in range(3)]
    finally:
        await producer.stop()
    await delete_before(bootstrap, topic, 0, 5)  # first offset == end offset == 5
    read = await read_all(Settings(kafka_bootstrap=bootstrap), topic)
    assert sorted((r.partition, r.offset) for r in read) == [(1, m.offset) for m in kept]


async def test_a_partition_ending_with_a_transaction_marker_ends_the_replay(
    kafka_redis: Services,
) -> None:
    bootstrap = kafka_redis.kafka_bootstrap
    topic = await new_topic(bootstrap)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, transactional_id=f"{topic}-writer", acks="all"
    )
    await producer.start()
    try:
        async with producer.transaction():
            for n in range(4):
                await producer.send(topic, f"r{n}".encode())
    finally:
        await producer.stop()
    read = await read_all(Settings(kafka_bootstrap=bootstrap), topic)
    assert [r.value for r in read] == [b"r0", b"r1", b"r2", b"r3"]  # the marker is offset 4


async def test_a_topic_is_whole_from_the_newest_first_record_retention_left(
    kafka_redis: Services,
) -> None:
    bootstrap = kafka_redis.kafka_bootstrap
    settings = Settings(kafka_bootstrap=bootstrap)
    topic = await new_topic(bootstrap, partitions=3)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for partition, stamps in enumerate([(1000, 2000, 3000), (1500, 2500), (1200,)]):
            for stamp in stamps:
                await producer.send_and_wait(topic, b"r", partition=partition, timestamp_ms=stamp)
    finally:
        await producer.stop()
    assert await kept_from(settings, topic, 500) is None  # nothing deleted yet
    await delete_before(bootstrap, topic, 0, 1)
    assert await kept_from(settings, topic, 500) == 2000
    assert await kept_from(settings, topic, 2500) is None  # cut before then
    await delete_before(bootstrap, topic, 1, 1)
    assert await kept_from(settings, topic, 500) == 2500  # the partition cut latest
    await delete_before(bootstrap, topic, 2, 1)  # all of it: says nothing of when
    assert await kept_from(settings, topic, 500) == 2500


async def test_the_lift_report_names_the_topics_retention_cut_within_its_period(
    kafka_redis: Services,
) -> None:
    bootstrap = kafka_redis.kafka_bootstrap
    settings = Settings(kafka_bootstrap=bootstrap, topic_prefix=f"cut{uuid.uuid4().hex[:6]}-")
    await ensure_topics(settings, partitions=1)
    period = LiftPeriod(
        datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 8, tzinfo=UTC), timedelta(days=1)
    )
    days = [(10, 20), (11, 1), (11, 2), (11, 3)]
    at = [int(datetime(2026, month, day, tzinfo=UTC).timestamp() * 1000) for month, day in days]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for stamp in at:
            for topic in ("touchpoints", "next-best-offers"):
                await producer.send_and_wait(settings.topic(topic), b"{}", timestamp_ms=stamp)
    finally:
        await producer.stop()
    as_of = datetime(2026, 11, 20, tzinfo=UTC)
    report = await measure_lift(settings, period, as_of)
    assert report["cut_by_retention"] == {}
    await delete_before(bootstrap, settings.topic("next-best-offers"), 0, 1)  # before the period
    await delete_before(bootstrap, settings.topic("touchpoints"), 0, 3)  # 1 and 2 November too
    report = await measure_lift(settings, period, as_of)
    assert report["cut_by_retention"] == {"touchpoints": "2026-11-03T00:00:00+00:00"}
    assert report["read"] == {"decisions": 3, "touchpoints": 1, "skipped": 3}


async def test_records_deleted_during_a_replay_skip_only_themselves(
    kafka_redis: Services,
) -> None:
    bootstrap = kafka_redis.kafka_bootstrap
    topic = await new_topic(bootstrap)
    big = b"x" * 300_000  # a few per fetch: the replay fetches again as it goes
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=400_000)
    await producer.start()
    try:
        for _ in range(30):
            await producer.send_and_wait(topic, big)
    finally:
        await producer.stop()
    offsets: list[int] = []

    async def slow_reader(records: list[ConsumerRecord]) -> None:
        if not offsets:  # retention deletes the oldest records meanwhile
            await delete_before(bootstrap, topic, 0, 20)
        offsets.extend(r.offset for r in records)

    settings = Settings(kafka_bootstrap=bootstrap)
    await asyncio.wait_for(replay(settings, topic, slow_reader, batch=1), ENDS_WITHIN_S)
    assert offsets[0] == 0 and offsets[-5:] == [25, 26, 27, 28, 29]
    assert set(range(20, 30)) <= set(offsets)  # all that was still kept


@pytest.fixture
def own_kafka(tmp_path: Path) -> Iterator[LocalKafka]:
    """A broker of this test's own, to be frozen."""
    kafka = LocalKafka(tmp_path / "kafka")
    kafka.start()
    try:
        yield kafka
    finally:
        kafka.stop()


async def test_a_replay_whose_broker_stops_answering_gives_up_with_a_kafka_error(
    own_kafka: LocalKafka,
) -> None:
    bootstrap = own_kafka.bootstrap
    topic = await new_topic(bootstrap)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:  # more than one fetch holds: the replay must ask the broker again
        for _ in range(40):
            await producer.send(topic, b"x" * 100_000)
        await producer.flush()
    finally:
        await producer.stop()
    assert own_kafka.process is not None
    broker = own_kafka.process.proc
    read: list[ConsumerRecord] = []

    async def freeze_the_broker(records: list[ConsumerRecord]) -> None:
        if not read:
            broker.send_signal(signal.SIGSTOP)  # alive, holding its sockets, silent
        read.extend(records)

    settings = Settings(kafka_bootstrap=bootstrap)
    try:
        replaying = replay(settings, topic, freeze_the_broker, batch=1, stall_s=3)
        with pytest.raises(ReplayStalled, match=f"topic {topic} made no progress"):
            await asyncio.wait_for(replaying, ENDS_WITHIN_S)
    finally:
        broker.send_signal(signal.SIGCONT)
    assert 0 < len(read) < 40
