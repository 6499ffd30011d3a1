"""Where the alert fan-out is in each partition of ``interventions`` and
``customer-erasures``, kept by hand.

The fan-out's consumer resets no position itself: a record read twice (a partition read
again from an older offset) is left out, offsets retention deleted before they were read
are a gap told to the screens that had not passed them, and a partition whose end is now
before where it was read (the topic made again) is read anew from its start, its old
alerts forgotten.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError, NoOffsetForPartitionError, OffsetOutOfRangeError

from streams.api.alert_buffer import AlertBuffer, ErasedCheck
from streams.api.screen_feed import partition_offset

log = logging.getLogger(__name__)
POSITION_KNOWN_S = 0.05  # a position the consumer knows comes at once
END_LOOKUP_S = 2.0  # a resuming screen waits this long at most for a partition's end


class FanOutOffsets(AlertBuffer):
    """The buffer, with the offset the fan-out reads next in each partition it reads."""

    def __init__(
        self,
        topic: str,
        erasures_topic: str,
        erased: ErasedCheck,
        refer: Callable[[str], str],
        backlog: int,
        retry_s: float,
    ) -> None:
        super().__init__(erased, refer, backlog, retry_s)
        self._topic = topic
        self._erasures_topic = erasures_topic
        # partition -> next offset, kept across reconnections: alerts and erasures made
        # while the fan-out was away are read then, not skipped
        self._alerts_read: dict[int, int] = {}
        self._erasures_read: dict[int, int] = {}
        self._ends: dict[int, int] = {}  # interventions partition -> the broker's end

    def _unread(
        self,
        consumer: AIOKafkaConsumer,
        tp: TopicPartition,
        records: list[ConsumerRecord[bytes, bytes]],
    ) -> list[ConsumerRecord[bytes, bytes]]:
        """The records this process has not read before: those read already (a partition
        read again from an older offset) are left out, and the partition is taken back
        to where it was; one whose end is now before it was made again."""
        known = self._read_of(tp).get(tp.partition)
        if known is None or records[0].offset >= known:
            return records
        end = consumer.highwater(tp)
        if end is not None and end < known:  # it started over: the topic was made again
            self._started_over(tp, records[0].offset)
            return records
        if records[-1].offset + 1 < known:
            consumer.seek(tp, known)
        return [r for r in records if r.offset >= known]

    def _read_of(self, tp: TopicPartition) -> dict[int, int]:
        """Per partition of ``tp``'s topic, the offset this process reads next there."""
        return self._erasures_read if tp.topic == self._erasures_topic else self._alerts_read

    async def _fetch(
        self,
        consumer: AIOKafkaConsumer,
        *partitions: TopicPartition,
        timeout_ms: int,
        max_records: int | None = None,
    ) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        """The consumer's next records, its positions kept by hand: it resets none itself
        (a reset to the oldest record kept would pass a deletion by untold)."""
        try:
            found: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
            found = await consumer.getmany(*partitions, timeout_ms=timeout_ms,
                                           max_records=max_records)  # fmt: skip
            return found
        except OffsetOutOfRangeError as exc:  # deleted, or past a new end
            for tp, offset in exc.args[0].items():
                await self._out_of_range(consumer, tp, offset)
        except NoOffsetForPartitionError:  # assigned anew (partitions added, a topic made
            # again): every partition lost its position, though one is named at a time
            for tp in consumer.assignment():
                read = self._read_of(tp)
                if tp.partition in read:  # where it was
                    consumer.seek(tp, read[tp.partition])
                else:  # added while it runs: from its oldest record kept
                    await consumer.seek_to_beginning(tp)
        return {}

    async def _out_of_range(
        self, consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int
    ) -> None:
        """``offset`` of the partition is no longer in its log: retention deleted it (and
        those after it, up to the oldest kept) while the fan-out was behind, or the topic
        was made again, ending before it. Deleted alerts are a gap to every screen that had
        not passed them: the screens streaming now end, and are told as they resume."""
        await consumer.seek_to_beginning(tp)
        # the broker not saying in time: the fan-out connects again, and finds out then
        start = await asyncio.wait_for(consumer.position(tp), END_LOOKUP_S)
        if start <= offset:  # the log ends before it: made again
            self._started_over(tp, start)
        elif tp.topic == self._topic:
            log.warning("%s[%d]: offsets %d to %d were deleted before the alert fan-out read "
                        "them; screens that had not passed them are told of a gap",
                        tp.topic, tp.partition, offset, start - 1)  # fmt: skip
            self._gaps.never_read(tp.partition, before=start)
            self.close_all()
        else:  # erasures it never heard of: their customers' alerts may reach screens
            log.warning("%s[%d]: offsets %d to %d were deleted before the alert fan-out read "
                        "them", tp.topic, tp.partition, offset, start - 1)  # fmt: skip

    @staticmethod
    async def _position(consumer: AIOKafkaConsumer, tp: TopicPartition, unknown: int) -> int:
        """The consumer's position in ``tp``, or ``unknown`` where it has none (assigned
        anew, until the next fetch places it): aiokafka's would wait for one for ever."""
        try:
            found: int = await asyncio.wait_for(consumer.position(tp), POSITION_KNOWN_S)
        except (KafkaError, TimeoutError):
            return unknown
        return found

    async def _past_markers(self, consumer: AIOKafkaConsumer, read: dict[int, int]) -> None:
        """Where the consumer went past offsets that held no alert (a transaction's
        markers) with nothing to hand on: read, so that retention deleting them later is
        not taken for alerts deleted unread (on a reconnection)."""
        for tp in consumer.assignment():
            if tp.topic != self._topic or tp.partition in read:
                continue
            known = self._alerts_read.get(tp.partition)
            at = await self._position(consumer, tp, -1)
            if known is not None and at > known:
                self._alerts_read[tp.partition] = at

    def _started_over(self, tp: TopicPartition, first: int) -> None:
        """A partition whose end is now before where this process had read it (the topic
        was deleted and made again, or its log lost): read it anew from ``first``, and
        forget the old partition's alerts (their positions name offsets of another log;
        a screen's position there is beyond the new end, so it starts over too)."""
        log.warning("%s[%d] starts over at offset %d (it ended past it before): the topic "
                    "was made again", tp.topic, tp.partition, first)  # fmt: skip
        if tp.topic == self._erasures_topic:
            self._erasures_read[tp.partition] = first
            return
        self._alerts_read[tp.partition] = first
        self._gaps.start_over(tp.partition, first)
        self._ends[tp.partition] = first
        old = (a for a in self._buffer if partition_offset(a.id)[0] != tp.partition)
        self._buffer = deque(old, maxlen=self._backlog)
        # the screens streaming now have passed offsets of the old log there, and would
        # take the new one's alerts for passed: their streams end, and each resumes with
        # that partition dropped from its position (past the new end)
        self.close_all()
