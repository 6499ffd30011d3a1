"""The API's Kafka producer: idempotent, and replaced by a new one when the broker says
its numbering of a partition's batches broke.

An idempotent producer numbers each partition's batches, so that a batch it sends again
(its acknowledgment lost, or the broker answered past the request timeout) is written
once. aiokafka's (0.14) never renumbers: once a numbered batch fails unwritten (refused
for good, or given up with no leader for its partition after 40 s), or the broker forgot
the producer (idle past ``producer.id.expiration.ms``), every later batch to that
partition fails, with ``OutOfOrderSequenceNumber`` or ``UnknownProducerId``, until the
process restarts (aio-libs/aiokafka#1017 and #510). Those errors start a new producer
(a new producer id, numbered from 0) that the next publications use; the failed ones are
sent again by their callers (answered decisions by
:class:`streams.api.decision_delivery.DecisionDelivery`, an erasure's record by the
client it answered 503). The producer replaced stops in the background once what it
holds is settled.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaProducer

log = logging.getLogger(__name__)

# what the broker answers once a producer's numbering of a partition broke
BROKEN_NUMBERING = frozenset({
    "OutOfOrderSequenceNumber", "UnknownProducerId", "InvalidProducerEpoch", "ProducerFenced",
})  # fmt: skip
START_WITHIN_S = 30.0


def broke_numbering(error: BaseException | None) -> bool:
    """Whether ``error`` says the producer's numbering of a partition broke (aiokafka's).

    >>> class OutOfOrderSequenceNumber(Exception): __module__ = "aiokafka.errors"
    >>> broke_numbering(OutOfOrderSequenceNumber()), broke_numbering(TimeoutError())
    (True, False)
    """
    if error is None or not type(error).__module__.startswith("aiokafka"):
        return False
    return type(error).__name__ in BROKEN_NUMBERING


class RenewingProducer:
    """What of :class:`aiokafka.AIOKafkaProducer` the API uses, from the newest producer
    ``make()`` built; a new one is built when a delivery of the newest says its numbering
    broke."""

    def __init__(
        self, make: Callable[[], AIOKafkaProducer], start_within_s: float = START_WITHIN_S
    ) -> None:
        self._make = make
        self._start_within_s = start_within_s
        self.current = make()
        self.renewals = 0  # producers replaced
        self._renewing: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self.current.start()

    async def partitions_for(self, topic: str) -> set[int]:
        partitions: set[int] = await self.current.partitions_for(topic)
        return partitions

    def create_batch(self) -> Any:
        return self.current.create_batch()

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> asyncio.Future[Any]:
        producer = self.current
        delivery: asyncio.Future[Any] = await producer.send_batch(batch, topic, partition=partition)
        delivery.add_done_callback(functools.partial(self._heard, producer))
        return delivery

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> asyncio.Future[Any]:
        producer = self.current
        delivery: asyncio.Future[Any] = await producer.send(topic, value, key=key)
        delivery.add_done_callback(functools.partial(self._heard, producer))
        return delivery

    def _heard(self, producer: AIOKafkaProducer, delivery: asyncio.Future[Any]) -> None:
        if delivery.cancelled() or not broke_numbering(delivery.exception()):
            return
        if producer is self.current and self._renewing is None:  # (not one replaced)
            self._renewing = asyncio.get_running_loop().create_task(self._renew())

    async def _renew(self) -> None:
        fresh = self._make()
        try:
            async with asyncio.timeout(self._start_within_s):
                await fresh.start()
        except Exception as exc:  # Kafka away: the next broken delivery tries again
            log.warning("the Kafka producer's numbering broke, and a new producer could "
                        "not start (%r); trying again at the next failure", exc)  # fmt: skip
            self._retire(fresh)
            return
        finally:
            self._renewing = None
        broken, self.current = self.current, fresh
        self.renewals += 1
        log.warning("the Kafka producer's numbering of a partition broke (a batch failed "
                    "unwritten, or the broker forgot the producer): publishing with a new "
                    "producer from now on (%d so far)", self.renewals)  # fmt: skip
        self._retire(broken)

    def _retire(self, producer: AIOKafkaProducer) -> None:
        """Stop ``producer`` once what it holds is settled (not waited for)."""
        task = asyncio.get_running_loop().create_task(producer.stop())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def stop(self) -> None:
        """Stop the producer and those replaced still stopping (see ``AIOKafkaProducer.stop``:
        it waits for what the producer holds)."""
        if self._renewing is not None:
            self._renewing.cancel()
            await asyncio.gather(self._renewing, return_exceptions=True)
        await asyncio.gather(self.current.stop(), *self._retiring, return_exceptions=True)
