"""Following ``customer-erasures`` while a command works: read from the beginning, then
caught up to its end as of each call (``moments dead-letters --redrive`` before each
batch it sends back, so that a customer erased meanwhile is not written anew)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from streams.committed_reads import READ_COMMITTED
from streams.kafka_security import client_options
from streams.settings import Settings
from streams.topic_replay import STALL_S, ReplayStalled, TopicMissing
from streams.topics import topic_partitions

Handler = Callable[[list[ConsumerRecord]], Awaitable[None]]

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
        :class:`ReplayStalled` after ``stall_s`` without progress."""
        consumer = self._consumer
        if consumer is None:
            raise RuntimeError("the follower is not started")
        ends = await consumer.end_offsets(self._tps)
        count = 0
        loop = asyncio.get_running_loop()
        progress_at, positions = loop.time(), dict[TopicPartition, int]()
        while True:
            deadline = asyncio.timeout_at(progress_at + stall_s)
            try:
                async with deadline:
                    now_at = {tp: await consumer.position(tp) for tp in self._tps}
                    remaining = [tp for tp, at in now_at.items() if at < ends[tp]]
                    if not remaining:
                        return count
                    records = await consumer.getmany(
                        *remaining, timeout_ms=1000, max_records=self._batch
                    )
            except TimeoutError:
                if not deadline.expired():
                    raise
                raise ReplayStalled(
                    self._topic, (tp.partition for tp in remaining), stall_s
                ) from None
            values = [msg for tp, msgs in records.items() for msg in msgs]
            if values:
                count += len(values)
                await self._handle(values)
            if records or now_at != positions:
                progress_at, positions = loop.time(), now_at

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
