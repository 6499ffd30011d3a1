"""Fan-out of the ``interventions`` topic to contact-centre screens (Server-Sent Events).

Each API process reads every partition (no consumer group), keeps the newest alerts in
a ring buffer for ``Last-Event-ID`` resumption, and hands each new alert to every
connected screen. An alert is ``<partition>-<offset>``; the event id a screen is sent is
its stream's :class:`StreamPosition`, the newest offset it has passed in each partition,
so that any replica, whatever order the partitions reached it in, resumes it without a
gap.

Erased customers stay off the screens: an alert whose customer is erased (tombstone in
Redis) is dropped, and an erasure, made by any API process (it reads the
``customer-erasures`` topic too), removes the customer's alerts from the buffer and
tells the connected screens that may show them to drop theirs (see
:mod:`streams.api.screen_erasures`: each alert sent carries a keyed hash of the customer
id, by which a screen is told of an erasure without learning who was erased). The hub
remembers recent erasures (:class:`RecentErasures`): an alert checked before the erasure
is not published after it, nor written from a screen's inbox, and a screen that resumes
is told of each, in case it was away when it was made. A process that starts reads the
last day's erasures from the topic before it is ready, so that a screen resuming on it
hears of the erasures made before it started too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

import msgspec
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError, NoOffsetForPartitionError, OffsetOutOfRangeError

from feature_store import StoreUnavailable
from schemas import InvalidEvent, decode_erasure, decode_intervention
from streams.api.alert_gaps import AlertGaps, Behind
from streams.api.alert_holds import WARN_AFTER_S, TransactionHolds
from streams.api.alert_readback import Dated, newest
from streams.api.resume_notices import ResumeNotices
from streams.api.screen_erasures import Erased, RecentErasures, with_customer_ref
from streams.api.screen_feed import (
    Alert,
    Inbox,
    Notice,
    StreamPosition,
    for_queue,
    partition_offset,
)
from streams.committed_reads import READ_COMMITTED
from streams.kafka_security import client_options

log = logging.getLogger(__name__)
POSITION_KNOWN_S = 0.05  # a position the consumer knows comes at once
END_LOOKUP_S = 2.0  # a resuming screen waits this long at most for a partition's end
READ_BACK_S = 5.0  # a process that starts reads the recent alerts this long at most
__all__ = ["Alert", "AlertHub", "ErasedCheck", "Inbox", "StreamPosition", "for_queue"]
ErasedCheck = Callable[[Sequence[str]], Awaitable[list[bool]]]  # customer ids -> erased?


class AlertHub:
    def __init__(
        self,
        bootstrap: str,
        topic: str,
        erasures_topic: str,
        erased: ErasedCheck,
        refer: Callable[[str], str],
        backlog: int = 500,
        retry_s: float = 0.5,
        partitions_every_s: float = 30.0,
        held_warn_s: float = WARN_AFTER_S,
    ) -> None:
        self._bootstrap = bootstrap
        self._partitions_every_s = partitions_every_s  # how soon added partitions are read
        self._topic = topic
        self._erasures_topic = erasures_topic
        self._erased = erased
        self.refer = refer  # customer id -> the customer_ref screens know them by
        self._backlog = backlog
        self._retry_s = retry_s
        self._buffer: deque[Alert] = deque(maxlen=backlog)
        self._holds = TransactionHolds(topic, held_warn_s)
        # where the buffer holds every alert read, and what left it (see missed)
        self._gaps = AlertGaps()
        # partition added while the process ran -> its first offset: a screen whose
        # position names no such partition was positioned before it was there
        self._added_from: dict[int, int] = {}
        self.erased_lately = RecentErasures()
        # what a resumed screen is told of them first, built once per change (not per screen)
        self.resume_notices = ResumeNotices(self.erased_lately)
        # what else forgets an erased customer (the fallbacks' contacts), told by forget
        self.also_forget: list[Callable[[str], None]] = []
        # partition -> next offset, kept across reconnections: alerts and erasures made
        # while the fan-out was away are read then, not skipped
        self._alerts_read: dict[int, int] = {}
        self._erasures_read: dict[int, int] = {}
        self._ends: dict[int, int] = {}  # interventions partition -> the broker's end
        self._subscribers: set[Inbox] = set()
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None  # while connected
        self._answered_at: float | None = None  # see last_answer
        self.ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="alert-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def last_answer(self) -> float | None:
        """When (seconds since the epoch) the broker last answered the fan-out, ``None``
        if it never did. Its consumer fetches in the background, and each fetch is
        answered within half a second, with alerts or without, while Kafka is up."""
        consumer = self._consumer
        if consumer is not None:
            polled = [consumer.last_poll_timestamp(tp) for tp in consumer.assignment()]
            newest = max((ms for ms in polled if ms is not None), default=None)
            if newest is not None:
                self._answered_at = max(newest / 1000, self._answered_at or 0.0)
        return self._answered_at

    def since(self, position: StreamPosition, queue: str | None) -> list[Alert]:
        """Buffered alerts the stream has not gone past, in ``queue`` if one is named.
        The position is per partition, so a screen that resumes on another replica,
        which received the partitions in another order, misses none."""
        return [a for a in self._buffer if not position.passed(a) and for_queue(a, queue)]

    def behind(self, sent: StreamPosition, queue: str | None) -> list[Behind]:
        """The partitions where alerts after the position a screen ``sent`` have left the
        buffer (or were never read into it), and whether any may have been for ``queue``
        (``None``: every queue): a stream resumed there cannot be sent them."""
        named = dict(sent.offsets())
        if not named:  # no position: it resumes nothing
            return []
        # A partition the position names past the end (a topic made again, see position)
        # starts over: it missed what left the buffer there from its first offset. One it
        # does not name had no alert when it was taken (a stream names every partition
        # with one, StreamPosition.cover), or was added since: the same from the offset
        # it was added at.
        within = dict(sent.within(self._ends).offsets())
        kept = self._gaps.kept_from
        passed = {
            p: within.get(p, -1 if p in named else self._added_from.get(p, 0) - 1) for p in kept
        }
        return self._gaps.behind(passed, queue)

    async def position(self, event_id: str | None) -> StreamPosition:
        """The position ``event_id`` names, less the partitions where it lies beyond
        the end of the topic (recreated or truncated since): those start over. Where it
        lies at or past the end this process last heard of, the broker is asked first:
        the screen may come from a replica that read further (Kafka not answering within
        ``END_LOOKUP_S``: as last heard)."""
        position = StreamPosition.parse(event_id)
        ahead = [p for p, o in position.offsets() if p in self._ends and o >= self._ends[p]]
        consumer = self._consumer
        if ahead and consumer is not None:
            tps = [TopicPartition(self._topic, p) for p in ahead]
            with contextlib.suppress(KafkaError, TimeoutError):
                ends = await asyncio.wait_for(consumer.end_offsets(tps), END_LOOKUP_S)
                for tp, end in ends.items():
                    self._ends[tp.partition] = end
        return position.within(self._ends)

    def unbuffered(self) -> dict[int, int]:
        """Per partition with no alert in the buffer, the offset the fan-out reads next:
        every alert before it was handed to the screens subscribed then (or dropped, its
        customer erased)."""
        buffered = {partition_offset(alert.id)[0] for alert in self._buffer}
        return {p: o for p, o in self._alerts_read.items() if p not in buffered}

    def subscribe(self, queue: str | None = None) -> Inbox:
        """An inbox for a screen following ``queue`` (``None``: every queue)."""
        inbox = Inbox(queue)  # bounded by Inbox.behind
        self._subscribers.add(inbox)
        return inbox

    def unsubscribe(self, inbox: Inbox) -> None:
        self._subscribers.discard(inbox)

    def close_all(self) -> None:
        """End every screen's stream (the process is stopping, or a partition started
        over); each one resumes from its position."""
        for inbox in self._subscribers:
            inbox.closed = True
            with contextlib.suppress(asyncio.QueueFull):
                inbox.put_nowait(None)
        self._subscribers.clear()

    def forget(self, customer_id: str, at: float | None = None) -> None:
        """The customer was erased (``at``, default now): remember it, drop their
        buffered alerts and tell the screens."""
        ref = self.refer(customer_id)
        # the erasing process hears of it twice: at once, and from the erasures topic
        told = customer_id in self.erased_lately
        self.erased_lately.add(customer_id, ref, at)
        for forget in self.also_forget:
            forget(customer_id)
        kept = (a for a in self._buffer if a.intervention.customer_id != customer_id)
        self._buffer = deque(kept, maxlen=self._backlog)
        if not told:  # the screens dropped their cards, and were sent none since
            self._notify(Erased(customer_id, ref))

    def publish(self, alerts: Sequence[Alert]) -> None:
        """Buffer alerts (already checked against erasures) and hand them to the screens,
        less those of customers erased since the check began, and those the buffer holds
        already under another offset (sent again by a worker that could not know Kafka
        had taken them: a broker that answered too late, a batch taken over)."""
        buffered = {a.intervention.intervention_id for a in self._buffer}
        for alert in alerts:
            if alert.intervention.customer_id in self.erased_lately:
                continue
            if alert.intervention.intervention_id in buffered:
                continue
            buffered.add(alert.intervention.intervention_id)
            if len(self._buffer) == self._buffer.maxlen:  # the oldest leaves the buffer
                self._gaps.left((self._buffer or [alert])[0])
            self._buffer.append(alert)
            self._notify(alert)

    def _notify(self, notice: Notice) -> None:
        for inbox in list(self._subscribers):
            if inbox.behind(notice):  # too far behind: its stream ends, and it resumes
                inbox.closed = True
                self._subscribers.discard(inbox)
            else:
                inbox.put_nowait(notice)

    async def unless_erased(self, alerts: list[Alert]) -> list[Alert]:
        """The alerts whose customers are not erased. While Redis cannot say, the alerts
        wait (an erased customer must not reach a screen), and so do the ones after them."""
        if not alerts:
            return []
        delay = self._retry_s
        while True:
            try:
                gone = await self._erased([a.intervention.customer_id for a in alerts])
            except StoreUnavailable as exc:
                log.warning("holding %d alerts until Redis can say who is erased: %s",
                            len(alerts), exc)  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            return [alert for alert, erased in zip(alerts, gone, strict=True) if not erased]

    async def recheck(self, alerts: list[Alert] | None = None) -> list[Alert]:
        """Check ``alerts`` (by default every buffered one) against the tombstones again
        (after the fan-out was down a while; before a stream sends its backlog, an
        erasure whose record never reached Kafka being unknown here): an erased
        customer's are dropped, and the screens told. The alerts kept."""
        alerts = list(self._buffer) if alerts is None else alerts
        kept = await self.unless_erased(alerts)
        for customer_id in {a.intervention.customer_id for a in alerts} - {
            a.intervention.customer_id for a in kept
        }:
            self.forget(customer_id)
        return kept

    async def _run(self) -> None:
        while True:
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("alert fan-out failed; reconnecting")
                await asyncio.sleep(1.0)

    async def _consume(self) -> None:
        consumer = AIOKafkaConsumer(
            self._topic,
            self._erasures_topic,
            bootstrap_servers=self._bootstrap,
            group_id=None,
            enable_auto_commit=False,
            # a partition with no position (added while it runs), or one retention has
            # deleted: raised, and placed by hand (see _fetch), so that none is skipped
            # (as "latest" would) and a deletion is told (as "earliest" would not)
            auto_offset_reset="none",
            # a transactional producer's alerts once committed, never those of one aborted
            isolation_level=READ_COMMITTED,
            metadata_max_age_ms=int(self._partitions_every_s * 1000),
            # The offset lookups below wait behind a fetch the broker holds open: briefly,
            # so that they do not each add half a second before the process is ready.
            fetch_max_wait_ms=100,
            **client_options(),
        )
        await consumer.start()
        self._consumer, self._answered_at = consumer, time.time()  # it answered the start
        try:
            partitions = consumer.partitions_for_topic(self._topic) or set()
            tps = [TopicPartition(self._topic, p) for p in partitions]
            ends = await consumer.end_offsets(tps) if tps else {}
            kept = await consumer.beginning_offsets(tps) if tps else {}  # retention's start
            reconnecting = bool(self._alerts_read)
            window: dict[TopicPartition, int] = {}  # read back before ready -> to this end
            for tp in tps:
                self._ends[tp.partition] = ends[tp]
                if self._alerts_read.get(tp.partition, 0) > ends[tp]:  # made again meanwhile
                    self._started_over(tp, kept[tp])
                if tp.partition in self._alerts_read:  # where the last connection was
                    at = min(self._alerts_read[tp.partition], ends[tp])
                    if at < kept[tp]:  # deleted meanwhile: never read, and told as a gap
                        self._gaps.never_read(tp.partition, before=kept[tp])
                        self.close_all()  # to the screens streaming too, as they resume
                    consumer.seek(tp, max(at, kept[tp]))
                else:  # back, so that screens see recent alerts at once
                    if reconnecting:  # a partition added while away
                        self._added_from[tp.partition] = kept[tp]
                    # a whole buffer back in each partition, the newest of them all kept
                    # (_read_back): one busy partition's are not cut to backlog/partitions
                    start = max(ends[tp] - self._backlog, kept[tp])
                    consumer.seek(tp, start)
                    self._alerts_read[tp.partition] = start
                    self._gaps.never_read(tp.partition, before=start)
                    if not reconnecting:
                        window[tp] = ends[tp]
            # Older erasures' tombstones keep their alerts off the screens. At the first
            # start, the last day's erasures are read (the newest a screen that resumes
            # here must hear of); after a reconnection, from where the last connection
            # was, so that no erasure made meanwhile goes unheard. Either way they are
            # read before any alert, and before the process is ready.
            erasure_partitions = consumer.partitions_for_topic(self._erasures_topic) or set()
            erasure_tps = [TopicPartition(self._erasures_topic, p) for p in erasure_partitions]
            await self._seek_erasures(consumer, erasure_tps)
            await self._catch_up_on_erasures(consumer, erasure_tps)
            await self.recheck()
            recent, read = await self._read_back(consumer, window) if window else ([], {})
            self.ready.set()  # not held while Redis says who is erased: as for later alerts
            self.publish(await self.unless_erased(recent))
            self._alerts_read.update(read)  # only once handed on: a failure reads again
            while True:
                batches = await self._fetch(consumer, timeout_ms=500, max_records=500)
                alerts, read = [], {}
                for tp, found in batches.items():
                    records = self._unread(consumer, tp, found)
                    if not records:
                        continue
                    if tp.topic == self._erasures_topic:
                        self._erasures(records)
                    else:
                        # a partition added since: read from its oldest record kept
                        if tp.partition not in self._gaps.kept_from:
                            self._gaps.never_read(tp.partition, before=records[0].offset)
                            self._added_from[tp.partition] = records[0].offset
                        alerts += _alerts(tp.partition, records, self.refer)
                        read[tp.partition] = records[-1].offset + 1
                for tp in consumer.assignment():  # the broker's end, so that a screen
                    # resuming here with a position this process has not read up to yet
                    # is not taken as stale
                    if tp.topic != self._topic:
                        continue
                    highwater = consumer.highwater(tp)
                    if highwater is not None:
                        self._ends[tp.partition] = highwater
                self.publish(await self.unless_erased(alerts))
                self._alerts_read.update(read)  # only once handed on: a failure reads again
                await self._past_markers(consumer, read)
                self._saw_holds(consumer)
        finally:
            self._holds.clear()
            self._consumer = None
            await consumer.stop()

    async def _read_back(
        self, consumer: AIOKafkaConsumer, window: dict[TopicPartition, int]
    ) -> tuple[list[Alert], dict[int, int]]:
        """At the first start: read each partition's last ``backlog`` alerts, up to its
        end then (read committed: its last stable offset, so that a transaction left
        open does not hold the process unready; its alerts come through the fan-out once
        committed). The newest ``backlog`` of them all, to buffer (see :func:`newest`),
        and where each partition was read to; those left out are recorded as having left
        the buffer (a gap to their queues' screens only). What is not read within
        ``READ_BACK_S`` (a broker not answering) comes through the fan-out."""
        found: dict[int, list[ConsumerRecord[bytes, bytes]]] = {tp.partition: [] for tp in window}
        behind, deadline = list(window), time.monotonic() + READ_BACK_S
        while behind and time.monotonic() < deadline:
            behind = [tp for tp in behind if await self._position(consumer, tp, -1) < window[tp]]
            if behind:
                for tp, records in (await self._fetch(consumer, *behind, timeout_ms=200)).items():
                    found[tp.partition] += records
        dated: dict[int, list[Dated]] = {}
        read: dict[int, int] = {}
        for partition, records in found.items():
            times = {record.offset: record.timestamp for record in records}
            alerts = _alerts(partition, records, self.refer)
            dated[partition] = [(times[partition_offset(a.id)[1]], a) for a in alerts]
            at = await self._position(consumer, TopicPartition(self._topic, partition), -1)
            read[partition] = max(at, records[-1].offset + 1 if records else -1)
        kept, left = newest(dated, self._backlog)
        for alert in left:
            self._gaps.left(alert)
        return kept, {p: o for p, o in read.items() if o > self._alerts_read[p]}

    async def _seek_erasures(
        self, consumer: AIOKafkaConsumer, erasure_tps: list[TopicPartition]
    ) -> None:
        """Where to read ``customer-erasures`` from: where the last connection was, or (at
        the first start) the first erasure of the last day, but no more than the newest
        ``limit`` of each partition (only the newest ``limit`` of all are remembered)."""
        if known := [tp for tp in erasure_tps if tp.partition in self._erasures_read]:
            ends, kept = await consumer.end_offsets(known), await consumer.beginning_offsets(known)
            for tp in known:
                if self._erasures_read[tp.partition] > ends[tp]:  # made again meanwhile
                    self._started_over(tp, kept[tp])
        first = [tp for tp in erasure_tps if tp.partition not in self._erasures_read]
        if first:
            recent = self.erased_lately
            since_ms = int((time.time() - recent.keep_s) * 1000)
            ends = await consumer.end_offsets(first)
            found = await consumer.offsets_for_times({tp: since_ms for tp in first})
            for tp in first:
                at = found.get(tp)
                start = ends[tp] if at is None else max(at.offset, ends[tp] - recent.limit)
                self._erasures_read[tp.partition] = start
        for tp in erasure_tps:
            consumer.seek(tp, self._erasures_read[tp.partition])

    async def _catch_up_on_erasures(
        self,
        consumer: AIOKafkaConsumer,
        erasure_tps: list[TopicPartition],
    ) -> None:
        """Read ``customer-erasures`` up to its end now, before any alert."""
        if not erasure_tps:
            return
        ends = await consumer.end_offsets(erasure_tps)
        backlog: list[ConsumerRecord[bytes, bytes]] = []
        behind = list(erasure_tps)
        while behind:
            for records in (await self._fetch(consumer, *behind, timeout_ms=500)).values():
                backlog += records
            # a log now shorter than its end asked at the start: the topic was made again
            # (read anew from its start), and the end to reach is the new log's
            shorter = [tp for tp in behind if _below(consumer.highwater(tp), ends[tp])]
            if shorter:
                ends.update(await consumer.end_offsets(shorter))
            behind = [tp for tp in behind if await self._position(consumer, tp, -1) < ends[tp]]
        backlog.sort(key=lambda record: record.timestamp)  # oldest first, as remembered
        self._erasures(backlog, dated=True)
        for tp in erasure_tps:  # past any offsets that held no record
            at = await self._position(consumer, tp, -1)
            if at >= 0:  # where it is, in the log it reads (the backlog may name an older one)
                self._erasures_read[tp.partition] = at

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

    def _saw_holds(self, consumer: AIOKafkaConsumer) -> None:
        """Whether a transaction left open holds a partition's alerts back."""
        for tp in consumer.assignment():
            if tp.topic == self._topic:
                read_to = self._alerts_read.get(tp.partition, 0)
                stable, end = consumer.last_stable_offset(tp), consumer.highwater(tp)
                self._holds.saw(tp.partition, read_to, stable, end)

    def held_s(self) -> float:
        """How long alerts have waited for a transaction left open (0.0: they do not)."""
        return self._holds.held_s()

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

    def _erasures(self, records: list[ConsumerRecord[bytes, bytes]], dated: bool = False) -> None:
        """Forget the customers of erasure records: as erased when the records say
        (``dated``: the ones made before this process started), or now (heard live)."""
        for record in records:
            try:
                erasure = decode_erasure(record.value or b"")
                self.forget(erasure.customer_id, erasure.ts.timestamp() if dated else None)
            except InvalidEvent:
                log.warning("%s[%d] offset %d is not an erasure record", record.topic,
                            record.partition, record.offset)  # fmt: skip
            self._erasures_read[record.partition] = record.offset + 1


def _below(offset: int | None, end: int) -> bool:
    """Whether ``offset`` (``None``: not known yet) is before ``end``."""
    return offset is not None and offset < end


def _alerts(
    partition: int, records: list[ConsumerRecord[bytes, bytes]], refer: Callable[[str], str]
) -> list[Alert]:
    """The interventions among ``records``, each as screens are sent it: with the
    customer's ref added."""
    found = []
    skipped, first = 0, ""
    for record in records:
        try:
            intervention = decode_intervention(record.value or b"")
            raw = with_customer_ref(record.value or b"", refer(intervention.customer_id))
        except Exception as exc:  # not an intervention: nothing to show
            said = str(exc) if isinstance(exc, msgspec.MsgspecError) else ""  # no values
            skipped, first = skipped + 1, first or f"{type(exc).__name__}: {said}"
            continue
        found.append(Alert(f"{partition}-{record.offset}", intervention, raw))
    if skipped:  # said, not silently dropped: a producer's alerts no screen will show
        log.warning("%d records of partition %d are not interventions as the contract has "
                    "them, and reach no screen (the first: %s)", skipped, partition,
                    first[:300])  # fmt: skip
    return found
