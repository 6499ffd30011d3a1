"""Keyed records to Kafka in whole batches: one batch per partition, not one send each.

Records are partitioned exactly as the Kafka producer itself would (murmur2 of the
key over the topic's partitions), so consumers see the same per-customer order as
with ``producer.send``. Records published within ``linger_s`` of each other travel
together: building the batches directly costs a fraction of the CPU of one
``producer.send`` per record, and fewer, larger requests wake the broker less often.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

_partitioner = DefaultPartitioner()
# The most one record (key and value) may hold: under the producers' and brokers' default
# limits (about 1 MB), and whole in a dead letter with its headers (LETTER_MAX). One
# larger is refused alone, before it could fail the batch it would share with others.
MAX_RECORD_BYTES = 800_000
# The most a process holds for Kafka at once (keys and values queued, or sent and not yet
# acknowledged): some 150,000 decisions, a few minutes of them at 1,000 a second. While
# Kafka is away answers go on, and what they publish waits; past this, publications fail
# at once (counted by their callers) rather than fill the process's memory until it is
# killed. One publication alone is never refused for its size (the body limit bounds it).
MAX_UNSETTLED_BYTES = 256 * 1024 * 1024


class PublisherFull(ConnectionError):
    """Kafka has not acknowledged ``MAX_UNSETTLED_BYTES`` of records yet: no more wait."""


class RecordTooLarge(ValueError):
    """Record ``index`` of a publication holds ``size`` bytes, more than a record may."""

    def __init__(self, index: int, size: int) -> None:
        super().__init__(f"record {index} holds {size} bytes; at most {MAX_RECORD_BYTES}")
        self.index = index
        self.size = size


def too_large(records: Sequence[tuple[bytes, bytes]]) -> RecordTooLarge | None:
    """The first of ``records`` (key, value) over :data:`MAX_RECORD_BYTES`, if any."""
    for i, (key, value) in enumerate(records):
        size = len(key) + len(value)
        if size > MAX_RECORD_BYTES:
            return RecordTooLarge(i, size)
    return None


Record = tuple[bytes, bytes]  # (key, value)
Pending = tuple[str, Sequence[Record], asyncio.Future[None]]  # topic, records, caller


class KeyedPublisher:
    """Sends lists of (key, value) records to topics, batched per partition."""

    def __init__(
        self,
        producer: AIOKafkaProducer,
        linger_s: float = 0.005,
        sent: Callable[[bool], None] | None = None,
        max_unsettled: int = MAX_UNSETTLED_BYTES,
    ) -> None:
        """``sent(ok)`` hears whether each publication was written (for ``/readyz``);
        ``max_unsettled``: the bytes of records Kafka has not acknowledged yet, at most."""
        self._producer = producer
        self._max_unsettled = max_unsettled
        self._held = 0  # bytes of the publications not yet settled
        self._linger_s = linger_s
        self._sent = sent
        self._pending: list[Pending] = []
        self._flush_at: asyncio.TimerHandle | asyncio.Handle | None = None
        self._soon = False
        self._order = asyncio.Lock()  # batches reach the producer in publish order
        self._sending: set[asyncio.Task[None]] = set()
        self._unsettled: set[asyncio.Future[None]] = set()  # publications not yet settled

    def would_refuse(self, size: int) -> bool:
        """Whether a publication of ``size`` bytes would be refused now, with
        :class:`PublisherFull`: too much waits for Kafka already."""
        return bool(self._held) and self._held + size > self._max_unsettled

    def publish(
        self, topic: str, records: Sequence[Record], linger: bool = True
    ) -> asyncio.Future[None]:
        """Queue the records; the future resolves once all of them are written, or fails
        at once, none of them sent, with :class:`RecordTooLarge`, or with
        :class:`PublisherFull` while too many records wait for Kafka already.

        With ``linger`` they wait up to ``linger_s`` for company; without, they go at
        the next turn of the event loop (with whatever else was published by then).
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        if not records:
            done.set_result(None)
            return done
        oversized = too_large(records)  # not Kafka's fault: not told to sent()
        if oversized is not None:
            done.set_exception(oversized)
            return done
        held = sum(len(key) + len(value) for key, value in records)
        if self.would_refuse(held):  # Kafka away for long
            done.set_exception(PublisherFull(f"{self._held} bytes wait for Kafka already"))
            self._tell(done)
            return done
        self._pending.append((topic, records, done))
        self._unsettled.add(done)
        self._held += held

        def settled(done: asyncio.Future[None]) -> None:
            self._unsettled.discard(done)
            self._held -= held

        done.add_done_callback(settled)
        if self._sent is not None:
            done.add_done_callback(self._tell)
        if not linger and not self._soon:
            if self._flush_at is not None:
                self._flush_at.cancel()
            self._flush_at, self._soon = loop.call_soon(self._flush), True
        elif self._flush_at is None:
            self._flush_at = loop.call_later(self._linger_s, self._flush)
        return done

    def _tell(self, done: asyncio.Future[None]) -> None:
        if self._sent is not None and not done.cancelled():
            self._sent(done.exception() is None)

    def _flush(self) -> None:
        self._flush_at, self._soon = None, False
        pending, self._pending = self._pending, []
        task = asyncio.get_running_loop().create_task(self._send(pending))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, pending: list[Pending]) -> None:
        by_topic: dict[str, list[tuple[Sequence[Record], asyncio.Future[None]]]] = {}
        for topic, records, done in pending:
            by_topic.setdefault(topic, []).append((records, done))
        async with self._order:
            for topic, items in by_topic.items():
                await self._send_topic(topic, items)

    async def _send_topic(
        self, topic: str, items: list[tuple[Sequence[Record], asyncio.Future[None]]]
    ) -> None:
        """Hand the callers' records to the producer in one batch per partition (more when
        one fills); each caller's future follows the batches that hold its records. When
        handing over fails part way, the callers whose records were all handed over still
        follow their batches (those records are sent); the others fail."""
        holding: list[list[asyncio.Future[Any]]] = [[] for _ in items]  # per caller
        unsent = [len(records) for records, _ in items]  # per caller, records not handed
        try:
            partitions = sorted(await self._producer.partitions_for(topic))
            by_partition: dict[int, list[tuple[int, Record]]] = {}
            for caller, (records, _) in enumerate(items):
                for key, value in records:
                    partition = _partitioner(key, partitions, partitions)
                    by_partition.setdefault(partition, []).append((caller, (key, value)))
            for partition, entries in by_partition.items():
                batch, held = self._producer.create_batch(), Counter[int]()
                for caller, (key, value) in entries:
                    if batch.append(key=key, value=value, timestamp=None) is None:
                        delivery = await self._send_batch(batch, topic, partition)
                        _handed(delivery, held, holding, unsent)
                        batch, held = self._producer.create_batch(), Counter[int]()
                        if batch.append(key=key, value=value, timestamp=None) is None:
                            raise ValueError("a record is larger than the producer's batch size")
                    held[caller] += 1
                if batch.record_count():
                    delivery = await self._send_batch(batch, topic, partition)
                    _handed(delivery, held, holding, unsent)
        except Exception as exc:
            for caller, (_, done) in enumerate(items):
                if unsent[caller] and not done.done():
                    done.set_exception(exc)
        for caller, (_, done) in enumerate(items):
            if not unsent[caller]:
                _follow(done, holding[caller])
            else:  # failed: what of it was handed over is sent all the same, unheard
                for delivery in holding[caller]:
                    delivery.add_done_callback(_observed)

    async def _send_batch(self, batch: Any, topic: str, partition: int) -> asyncio.Future[Any]:
        batch.close()  # nothing else may join it once it is handed over
        future: asyncio.Future[Any] = await self._producer.send_batch(
            batch, topic, partition=partition
        )
        return future

    async def drain(self) -> None:
        """Send what is queued and wait until Kafka has acknowledged it, or refused it
        (at shutdown)."""
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush()
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)
        if self._unsettled:  # shielded: a drain given up must not cancel them (see give_up)
            await asyncio.gather(*map(asyncio.shield, self._unsettled), return_exceptions=True)

    def give_up(self, why: str) -> int:
        """Fail every publication Kafka has not acknowledged yet, with ``why`` (the
        process stops: their callers hear of it, and count them); how many there were."""
        unsettled = [done for done in self._unsettled if not done.done()]
        for done in unsettled:
            done.set_exception(ConnectionError(why))
        return len(unsettled)


def _handed(
    delivery: asyncio.Future[Any],
    held: Counter[int],
    holding: list[list[asyncio.Future[Any]]],
    unsent: list[int],
) -> None:
    """A batch holding ``held`` records of each caller was handed to the producer."""
    for caller, count in held.items():
        holding[caller].append(delivery)
        unsent[caller] -= count


def _follow(done: asyncio.Future[None], deliveries: list[asyncio.Future[Any]]) -> None:
    """``done`` resolves once every batch holding its records is delivered, or fails as
    the first that fails (cancelled if one was)."""
    if done.done():
        for delivery in deliveries:
            delivery.add_done_callback(_observed)
        return
    if not deliveries:
        done.set_result(None)
        return
    delivered = asyncio.gather(*deliveries)

    def settle(outcome: asyncio.Future[list[Any]]) -> None:
        if done.done():
            _observed(outcome)
        elif outcome.cancelled():
            done.cancel()
        elif (error := outcome.exception()) is not None:
            done.set_exception(error)
        else:
            done.set_result(None)

    delivered.add_done_callback(settle)


def _observed(delivery: asyncio.Future[Any]) -> None:
    """Retrieve a delivery's outcome that nobody waits for (no "never retrieved")."""
    if not delivery.cancelled():
        delivery.exception()
