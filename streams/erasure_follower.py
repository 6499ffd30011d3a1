"""Following ``customer-erasures`` while a command works: read from the beginning, then
caught up to its end as of each call (``moments dead-letters --redrive`` before each
batch it sends back, so that a customer erased meanwhile is not written anew)."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.committed_reads import READ_COMMITTED
from streams.kafka_security import client_options
from streams.settings import Settings
from streams.topic_replay import STALL_S, Handler, TopicMissing, read_to_ends
from streams.topics import topic_partitions

# a fetch the broker holds open delays an offsets lookup behind it: kept short, so that
# catching up on a topic with nothing new costs a round trip or two
FETCH_WAIT_MS = 20


class ErasureFollower:
    """One consumer of ``topic``, its records handed to ``handle`` in order, read to the
    end as of each :meth:`catch_up` (the first reads everything kept)."""

    def __init__(self, settings: Settings, topic: str, handle: Handler, batch: int) -> None:
        self._settings = settings
        self._topic = topic
        self._handle = handle
        self._batch = batch
        self._consumer: AIOKafkaConsumer | None = None
        self._tps: list[TopicPartition] = []

    async def start(self) -> None:
        partitions = await topic_partitions(self._settings.kafka_bootstrap, self._topic)
        if not partitions:
            raise TopicMissing(self._topic)
        consumer = AIOKafkaConsumer(
            **client_options(), bootstrap_servers=self._settings.kafka_bootstrap,
            group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
            isolation_level=READ_COMMITTED, fetch_max_wait_ms=FETCH_WAIT_MS,
        )  # fmt: skip
        await consumer.start()
        self._consumer = consumer
        self._tps = [TopicPartition(self._topic, p) for p in sorted(partitions)]
        consumer.assign(self._tps)
        await consumer.seek_to_beginning(*self._tps)

    async def catch_up(self, stall_s: float = STALL_S) -> int:
        """Read to each partition's end as of now; returns the records read. Raises
        :class:`streams.topic_replay.ReplayStalled` after ``stall_s`` without progress."""
        consumer = self._consumer
        if consumer is None:
            raise RuntimeError("the follower is not started")
        ends = await consumer.end_offsets(self._tps)
        return await read_to_ends(consumer, self._topic, ends, self._handle, self._batch,
                                  stall_s, past_ends=True)  # fmt: skip

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
