"""The learners: one logical model each, learned from a topic, shared by every process.

The Faust leader runs them (:func:`learn_while_leader`). Each reads its topic with its
own consumer whose positions are saved inside each snapshot (or beside it, when the
records read since taught nothing), so a restarted (or new) learner resumes from the last
snapshot plus the records after it: nothing is learned twice or lost, nor counted twice.
It looks for partitions added to its topic while it runs (every ``partitions_every_s``)
and reads them from their beginning, as a restarted learner would. Every worker and API
process reloads the newest snapshot within a couple of seconds
(:mod:`streams.model_snapshots`).

What a learner learns is claimed in Redis first, with the record it came from: a record
read again (the learner restarted, here or in another process, from a snapshot that
lacks it) claims again and is learned again, a copy sent in another record is not. The
two learners are :class:`streams.offer_learner.OfferLearner` (``nbo``) and
:class:`streams.risk_learner.RiskLearner` (``risk``).

A partition whose log lost its tail but kept its offsets (an unclean leader election, a
Kafka restored from an older backup) ends before the position a snapshot holds: the
consumer reads it again from its beginning. Below the position the model had reached (its
floor), a record whose claim says it was read before is in the model already, and is
skipped; a new claim there starts the records written since, learned as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from agents.batch_retries import outage
from feature_store import FeatureStore
from streams.committed_reads import READ_COMMITTED
from streams.kafka_security import client_options
from streams.metrics import Metrics
from streams.model_snapshots import Snapshot
from streams.topics import topic_partitions

log = logging.getLogger(__name__)
PARTITIONS_EVERY_S = 30.0  # how often a learner looks for partitions added to its topic


_decode_positions = msgspec.json.Decoder(dict[str, int]).decode


class SnapshotLearner:
    """Learn one model from one topic; offsets travel inside the model's snapshots."""

    name = ""

    def __init__(self, store: FeatureStore, metrics: Metrics, bootstrap: str, topic: str,
                 publish_every_s: float = 2.0,
                 partitions_every_s: float = PARTITIONS_EVERY_S) -> None:  # fmt: skip
        self._store = store
        self._metrics = metrics
        self._bootstrap = bootstrap
        self._topic = topic
        self._publish_every_s = publish_every_s
        self._partitions_every_s = partitions_every_s
        # partition -> the position the model has learned up to (see _learned_before)
        self._floors: dict[int, int] = {}
        self._floor_moved = False  # a partition's records written since began below it
        self._lagging: set[TopicPartition] = set()  # partitions whose lag it reports
        if self.name and metrics is not None:  # at 0 from the start: an alert sees the first
            metrics.learner_rewinds.labels(self.name)

    # what a model kind provides
    def _start(self, state: dict[str, Any] | None, version: int) -> None:
        raise NotImplementedError

    def _state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _published(self, version: int) -> None:
        raise NotImplementedError

    async def _learn(self, partition: int, records: list[Any]) -> int:
        raise NotImplementedError

    def _learned_before(self, partition: int, offset: int, again: bool) -> bool:
        """Whether the record at ``offset``, claimed (``again``: its claim says this record
        claimed it before), is in the model already: read again below the partition's
        floor, it is. A new claim there means the log goes on with records written after
        it lost its tail: from it on, the partition is learned as usual."""
        floor = self._floors.get(partition)
        if floor is None or offset >= floor:
            return False
        if again:
            return True
        self._floors[partition] = offset
        self._floor_moved = True
        return False

    async def run(self, still_leader: Callable[[], bool]) -> None:
        """Learn while ``still_leader()``; returns when leadership is lost."""
        partitions = await topic_partitions(self._bootstrap, self._topic)
        if not partitions:
            log.warning("topic %s has no partitions yet; the learner waits", self._topic)
            return
        found = await self._store.models.load(self.name)
        version, offsets, floors = 0, {}, {}
        if found is not None:
            snap = msgspec.json.decode(found[1], type=Snapshot)
            version, offsets = found[0], {int(p): o for p, o in snap.offsets.items()}
            floors = offsets | {int(p): o for p, o in snap.floors.items()}
            self._start(snap.model, version)
        else:
            self._start(None, 0)
        saved = await self._store.models.positions(self.name, version)
        if saved is not None:  # read on past records that taught nothing
            offsets |= {int(p): o for p, o in _decode_positions(saved).items()}
        self._floors = {p: max(o, floors.get(p, 0)) for p, o in offsets.items()}
        self._floor_moved = False
        consumer = AIOKafkaConsumer(
            **client_options(),
            bootstrap_servers=self._bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level=READ_COMMITTED,  # an aborted transaction's outcomes teach nothing
        )
        tps = [TopicPartition(self._topic, p) for p in partitions]
        await consumer.start()
        try:
            await self._assign(consumer, tps, offsets)
            log.info("%s learner started at version %d", self.name, version)
            last_publish, pending, moved = time.monotonic(), 0, False
            look_again_at = time.monotonic() + self._partitions_every_s
            while still_leader():
                batches = await consumer.getmany(timeout_ms=500, max_records=500)
                # before learning: one that fails on what it fetched still says what waits
                await self._report_lag(consumer, tps, batches)
                for tp, records in batches.items():
                    p = tp.partition
                    if p in offsets and records[0].offset < offsets[p]:
                        self._rewound(p, offsets[p], records[0].offset)
                    pending += await self._learn(p, records)
                    offsets[p] = records[-1].offset + 1
                    self._floors[p] = max(self._floors.get(p, 0), offsets[p])
                    moved = True
                if time.monotonic() >= look_again_at:
                    tps = await self._added_partitions(consumer, tps, offsets)
                    look_again_at = time.monotonic() + self._partitions_every_s
                # a floor that moved down is published at once: read again, the records
                # it now lets teach say "again", and only this snapshot tells them apart
                due = time.monotonic() - last_publish >= self._publish_every_s
                if (pending or moved) and (due or self._floor_moved):
                    learned = pending > 0 or self._floor_moved
                    new = await self._checkpoint(version, offsets, learned=learned)
                    if new is None:
                        log.warning("another %s learner published first; restarting", self.name)
                        return
                    version, pending, moved, last_publish = new, 0, False, time.monotonic()
                    self._floor_moved = False
            log.info("%s learner handed over: this worker no longer leads the group (the "
                     "new leader learns on from version %d)", self.name, version)  # fmt: skip
            self.forget_figures()
        finally:
            # A failure keeps the figures: the learner restarts here, and its lag (growing
            # while it fails) and MomentsModelOnBaseline's hour go on (learn_while_leader
            # drops them once this worker no longer leads)
            await consumer.stop()

    def forget_figures(self) -> None:
        """Drop what this learner reports (its model's quality figures, its topic's lag):
        no longer learning here, they would go stale and keep alerts on them firing;
        the new leader's are the ones to read."""
        self._metrics.forget_model_quality(self.name)
        for tp in self._lagging:
            with contextlib.suppress(KeyError):
                self._metrics.consumer_lag.remove(tp.topic, str(tp.partition))
        self._lagging.clear()

    def _rewound(self, partition: int, position: int, now_at: int) -> None:
        """Say (once each time) that a partition is read again from ``now_at``, before
        the learner's ``position``: it ended before that position."""
        self._metrics.learner_rewinds.labels(self.name).inc()
        log.warning("%s learner: %s[%d] ends before its position %d (the log lost its "
                    "tail: an unclean leader election, a Kafka restored from a backup); "
                    "read again from offset %d, learning only what its model lacks",
                    self.name, self._topic, partition, position, now_at)  # fmt: skip

    @staticmethod
    async def _assign(
        consumer: AIOKafkaConsumer, tps: list[TopicPartition], offsets: dict[int, int]
    ) -> None:
        """Read ``tps``: each from its position in ``offsets``, or from its beginning
        when nothing of it was read yet."""
        consumer.assign(tps)
        for tp in tps:
            if tp.partition in offsets:
                consumer.seek(tp, offsets[tp.partition])
            else:
                await consumer.seek_to_beginning(tp)

    async def _added_partitions(
        self, consumer: AIOKafkaConsumer, tps: list[TopicPartition], offsets: dict[int, int]
    ) -> list[TopicPartition]:
        """The partitions to read now: ``tps``, plus any added to the topic since (read
        from their beginning, as a restarted learner would; the others go on from where
        they are, since a new assignment forgets positions)."""
        try:
            found = await topic_partitions(self._bootstrap, self._topic)
        except (KafkaError, OSError) as exc:  # looked for again next time
            log.warning("%s learner could not list the partitions of %s: %s",
                        self.name, self._topic, exc)  # fmt: skip
            return tps
        added = sorted(set(found) - {tp.partition for tp in tps})
        if not added:
            return tps
        log.info("%s learner reads partitions %s, added to %s", self.name, added, self._topic)
        grown = [*tps, *(TopicPartition(self._topic, p) for p in added)]
        await self._assign(consumer, grown, offsets)
        return grown

    async def _checkpoint(self, version: int, offsets: dict[int, int], learned: bool) -> int | None:
        """Save how far the topic is read: with a new model version if something was
        learned since ``version``, else beside it (no process needs to reload the same
        model). The version now, or None if another learner published first."""
        positions = {str(p): o for p, o in offsets.items()}
        models = self._store.models
        if not learned:
            encoded = msgspec.json.encode(positions).decode()
            return version if await models.save_positions(self.name, version, encoded) else None
        floors = {str(p): f for p, f in self._floors.items() if f > offsets.get(p, 0)}
        snap = Snapshot(self._state(), positions, datetime.now(UTC), floors)
        new = await models.publish(self.name, version, msgspec.json.encode(snap).decode())
        if new is not None:
            self._published(new)
        return new

    async def _report_lag(
        self,
        consumer: AIOKafkaConsumer,
        tps: list[TopicPartition],
        fetched: Mapping[TopicPartition, list[Any]] | None = None,
    ) -> None:
        """What the learner has still to learn, per partition (``moments_consumer_lag``,
        as the workers report the touchpoints'), so that a stalled learner is noticed:
        from the first record ``fetched`` (not learned yet), else from its position."""
        fetched = fetched or {}
        for tp in tps:
            highwater = consumer.highwater(tp)
            if highwater is not None:
                records = fetched.get(tp)
                position = records[0].offset if records else await consumer.position(tp)
                lag = max(highwater - position, 0)
                self._metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(lag)
                self._lagging.add(tp)


async def learn_while_leader(
    learner: SnapshotLearner,
    is_leader: Callable[[], bool],
    pauses: tuple[float, float] = (1.0, 30.0),
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    restarted: Callable[[str], None] = lambda reason: None,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """A learner's life in a worker: run whenever this worker is the leader. A learner
    that fails starts again from its snapshot after a pause that doubles, from
    ``pauses[0]`` to ``pauses[1]``, while it keeps failing (a run that lasted
    ``pauses[1]`` or longer before it failed starts the pauses over), each restart counted
    (``restarted("learner:<name>:<error>")``, as ``moments_batch_retries_total``'s
    reason): an outage (Redis down, full or read-only; Kafka away) logs one line each
    time; any other fault (one it would meet again: a snapshot it cannot restore) logs
    its traceback the first time, then one line. What the learner reports (its lag, its
    model's figures) stays while it restarts, and goes once this worker leads no more or
    stops."""
    first, longest = pauses
    pause, failing = first, ""
    while True:
        if is_leader():
            started = clock()
            try:
                await learner.run(is_leader)
                pause, failing = first, ""
            except asyncio.CancelledError:
                learner.forget_figures()  # the worker stops
                raise
            except Exception as exc:
                if clock() - started >= longest:  # it learned a while: a new fault
                    pause, failing = first, ""
                kind = type(exc).__name__
                restarted(f"learner:{learner.name}:{kind}")
                if outage(exc):
                    log.warning("%s learner stopped, Redis or Kafka cannot serve it (%s: "
                                "%s); restarting from its snapshot in %.0f s", learner.name,
                                kind, exc, pause)  # fmt: skip
                elif failing != kind:
                    log.exception("%s learner failed; restarting from its snapshot in %.0f s",
                                  learner.name, pause)  # fmt: skip
                else:
                    log.warning("%s learner failed again (%s: %s); restarting from its "
                                "snapshot in %.0f s", learner.name, kind, exc, pause)  # fmt: skip
                failing = "" if outage(exc) else kind
                await sleep(pause)
                pause = min(pause * 2, longest)
                continue
        learner.forget_figures()  # (failed, then leadership lost: nothing else drops them)
        await sleep(first)
