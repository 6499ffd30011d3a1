"""Reading a topic once, from the beginning (or a moment) to its end as of now: for the
commands that work from what the topics hold (``moments rebuild``, ``moments lift``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from streams.committed_reads import READ_COMMITTED
from streams.kafka_security import client_options
from streams.settings import Settings
from streams.topics import topic_partitions

Handler = Callable[[list[ConsumerRecord]], Awaitable[None]]

STALL_S = 120.0  # this long with no record and no position moving: a replay gives up


class TopicMissing(LookupError):
    """A topic to be read does not exist (a wrong ``MOMENTS_TOPIC_PREFIX``, or a
    deployment whose workers never started, which create the topics)."""

    def __init__(self, topic: str) -> None:
        super().__init__(
            f"topic {topic} does not exist, or this client may not describe it: is "
            "MOMENTS_TOPIC_PREFIX right? (the workers create the topics when they start)"
        )
        self.topic = topic


class ReplayStalled(KafkaError):  # type: ignore[misc]  # aiokafka's errors are untyped
    """Reading a topic made no progress for a while: a partition with no leader (its
    brokers down), or a broker that stopped answering. A Kafka error, so the commands
    tell the operator to run again once Kafka answers."""

    def __init__(self, topic: str, partitions: Iterable[int], stall_s: float) -> None:
        left = ", ".join(str(p) for p in sorted(partitions))
        super().__init__(
            f"reading topic {topic} made no progress for {stall_s:.0f}s (partitions "
            f"{left} not yet read to their end): is a partition without a leader?"
        )
        self.topic = topic


async def _partitions(settings: Settings, topic: str) -> list[int]:
    partitions = await topic_partitions(settings.kafka_bootstrap, topic)
    if not partitions:  # a topic has one at least
        raise TopicMissing(topic)
    return partitions


async def replay(
    settings: Settings,
    topic: str,
    handle: Handler,
    batch: int,
    from_ms: int | None = None,
    stall_s: float = STALL_S,
) -> int:
    """Read ``topic`` to its end as of now, in batches; returns the records read (raises
    :class:`TopicMissing` if it does not exist).

    From the beginning, or with ``from_ms`` from each partition's first record written
    at or after that moment (by the records' Kafka timestamps). A partition is done once
    the consumer's position reaches its end, so one whose records all expired, or that
    ends with transaction markers (which are never delivered), ends the replay too.
    Records that retention deletes during a long replay are skipped, not the rest of
    their partition. Raises :class:`ReplayStalled` after ``stall_s`` seconds without a
    record read or a position moving (the time ``handle`` takes does not count).
    """
    partitions = await _partitions(settings, topic)
    consumer = AIOKafkaConsumer(
        **client_options(),
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",  # a replay reads everything still kept
        isolation_level=READ_COMMITTED,  # as the worker read them: no aborted records
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return 0
        # Offsets are looked up before anything is assigned: once the consumer fetches,
        # each lookup waits behind a fetch the broker holds open (up to half a second).
        ends = await consumer.end_offsets(tps)
        found = {}
        if from_ms is not None:
            found = await consumer.offsets_for_times({tp: from_ms for tp in tps})
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        if from_ms is not None:
            for tp in tps:
                at = found.get(tp)
                if at is None:  # nothing written since: nothing to read
                    ends[tp] = 0
                else:
                    consumer.seek(tp, at.offset)
        return await read_to_ends(consumer, topic, ends, handle, batch, stall_s)
    finally:
        await consumer.stop()


async def read_to_ends(
    consumer: AIOKafkaConsumer,
    topic: str,
    ends: dict[TopicPartition, int],
    handle: Handler,
    batch: int,
    stall_s: float = STALL_S,
    past_ends: bool = False,
) -> int:
    """Hand ``handle`` what ``consumer`` reads of ``topic`` until its position reaches
    each partition's offset in ``ends``; returns the records read. Records past the ends
    (written meanwhile) are left out, unless ``past_ends`` (a consumer that reads on
    later, which would not read them again). Raises :class:`ReplayStalled` after
    ``stall_s`` seconds without a record read or a position moving."""
    remaining = {tp for tp, end in ends.items() if end > 0}
    count = 0
    loop = asyncio.get_running_loop()
    progress_at, positions = loop.time(), dict[TopicPartition, int]()
    while True:
        deadline = asyncio.timeout_at(progress_at + stall_s)
        try:
            async with deadline:
                # by position: it moves past transaction markers and expired records
                now_at = {tp: await consumer.position(tp) for tp in remaining}
                remaining = {tp for tp, at in now_at.items() if at < ends[tp]}
                if not remaining:
                    return count
                records = await consumer.getmany(*remaining, timeout_ms=1000, max_records=batch)
        except TimeoutError:
            if not deadline.expired():  # the client's own timeout: as it says
                raise
            raise ReplayStalled(topic, (tp.partition for tp in remaining), stall_s) from None
        values = [msg for tp, msgs in records.items() for msg in msgs
                  if past_ends or msg.offset < ends[tp]]  # fmt: skip
        if values:
            count += len(values)
            await handle(values)
        if records or now_at != positions:
            progress_at, positions = loop.time(), now_at


async def first_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """Each partition's oldest offset still kept (above 0: retention deleted records)."""
    partitions = await _partitions(settings, topic)
    consumer = AIOKafkaConsumer(
        **client_options(),
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        isolation_level=READ_COMMITTED,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        firsts = await consumer.beginning_offsets(tps) if tps else {}
        return {tp.partition: offset for tp, offset in firsts.items()}
    finally:
        await consumer.stop()


async def kept_from(settings: Settings, topic: str, since_ms: int) -> int | None:
    """Whether retention has cut ``topic`` after ``since_ms``: the Kafka timestamp (ms)
    from which it is whole (the newest first record among the partitions it cut whose
    first record is that recent), or ``None`` when everything written since then is
    kept. A partition whose records were all deleted says nothing of when."""
    partitions = await _partitions(settings, topic)
    consumer = AIOKafkaConsumer(
        **client_options(),
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        isolation_level=READ_COMMITTED,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        firsts = await consumer.beginning_offsets(tps)
        cut = [tp for tp, first in firsts.items() if first > 0]
        if not cut:
            return None
        found = await consumer.offsets_for_times({tp: since_ms for tp in cut})
        # a partition whose first record since then is its first kept may have lost some
        stamps = [at.timestamp for tp, at in found.items() if at and at.offset == firsts[tp]]
        return max(stamps, default=None)
    finally:
        await consumer.stop()
