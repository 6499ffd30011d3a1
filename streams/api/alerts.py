"""Fan-out of the ``interventions`` topic to contact-centre screens (Server-Sent Events).

Each API process reads every partition (no consumer group), keeps the newest alerts in
a ring buffer for ``Last-Event-ID`` resumption, and hands each new alert to every
connected screen (:mod:`streams.api.alert_buffer`). An alert is
``<partition>-<offset>``; the event id a screen is sent is its stream's
:class:`StreamPosition`, the newest offset it has passed in each partition, so that any
replica, whatever order the partitions reached it in, resumes it without a gap.

It reads the ``customer-erasures`` topic too: an erasure made by any API process removes
the customer's alerts from the buffer and tells the screens. A process that starts reads
the last day's erasures from the topic before it is ready, so that a screen resuming on
it hears of the erasures made before it started too. Where it is in each partition is
kept by hand (:mod:`streams.api.fanout_offsets`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import msgspec
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from schemas import InvalidEvent, decode_erasure, decode_intervention
from streams.api.alert_buffer import ErasedCheck
from streams.api.alert_gaps import Behind
from streams.api.alert_holds import WARN_AFTER_S, TransactionHolds
from streams.api.alert_readback import Dated, newest
from streams.api.fanout_offsets import END_LOOKUP_S, FanOutOffsets
from streams.api.screen_erasures import with_customer_ref
from streams.api.screen_feed import Alert, StreamPosition, partition_offset
from streams.committed_reads import READ_COMMITTED
from streams.kafka_security import client_options

log = logging.getLogger(__name__)
READ_BACK_S = 5.0  # a process that starts reads the recent alerts this long at most


class AlertHub(FanOutOffsets):
    """The fan-out: reads both topics into the buffer, and places a resuming screen."""

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
        super().__init__(topic, erasures_topic, erased, refer, backlog, retry_s)
        self._bootstrap = bootstrap
        self._partitions_every_s = partitions_every_s  # how soon added partitions are read
        self._holds = TransactionHolds(topic, held_warn_s)
        # partition added while the process ran -> its first offset: a screen whose
        # position names no such partition was positioned before it was there
        self._added_from: dict[int, int] = {}
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
