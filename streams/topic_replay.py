"""Reading a topic once, from the beginning (or a moment) to its end as of now: for the
commands that work from what the topics hold (``moments rebuild``, ``moments lift``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from streams.kafka_security import client_options
from streams.settings import Settings
from streams.topics import topic_partitions

Handler = Callable[[list[ConsumerRecord]], Awaitable[None]]


class TopicMissing(LookupError):
    """A topic to be read does not exist (a wrong ``MOMENTS_TOPIC_PREFIX``, or a
    deployment whose workers never started, which create the topics)."""

    def __init__(self, topic: str) -> None:
        super().__init__(
            f"topic {topic} does not exist, or this client may not describe it: is "
            "MOMENTS_TOPIC_PREFIX right? (the workers create the topics when they start)"
        )
        self.topic = topic


async def _partitions(settings: Settings, topic: str) -> list[int]:
    partitions = await topic_partitions(settings.kafka_bootstrap, topic)
    if not partitions:  # a topic has one at least
        raise TopicMissing(topic)
    return partitions


async def replay(
    settings: Settings, topic: str, handle: Handler, batch: int, from_ms: int | None = None
) -> int:
    """Read ``topic`` to its end as of now, in batches; returns the records read (raises
    :class:`TopicMissing` if it does not exist).

    From the beginning, or with ``from_ms`` from each partition's first record written
    at or after that moment (by the records' Kafka timestamps). A partition is done once
    the consumer's position reaches its end, so one whose records all expired, or that
    ends with transaction markers (which are never delivered), ends the replay too.
    Records that retention deletes during a long replay are skipped, not the rest of
    their partition.
    """
    partitions = await _partitions(settings, topic)
    consumer = AIOKafkaConsumer(
        **client_options(),
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",  # a replay reads everything still kept
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
        remaining = {tp for tp in tps if ends[tp] > 0}
        count = 0
        while True:
            # by position: it moves past transaction markers and expired records too
            remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}
            if not remaining:
                return count
            records = await consumer.getmany(*remaining, timeout_ms=1000, max_records=batch)
            values = [msg for tp, msgs in records.items() for msg in msgs if msg.offset < ends[tp]]
            if values:
                count += len(values)
                await handle(values)
    finally:
        await consumer.stop()


async def first_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """Each partition's oldest offset still kept (above 0: retention deleted records)."""
    partitions = await _partitions(settings, topic)
    consumer = AIOKafkaConsumer(
        **client_options(), bootstrap_servers=settings.kafka_bootstrap, group_id=None
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        firsts = await consumer.beginning_offsets(tps) if tps else {}
        return {tp.partition: offset for tp, offset in firsts.items()}
    finally:
        await consumer.stop()
