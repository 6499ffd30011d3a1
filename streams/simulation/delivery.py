"""The simulator's records on their way to Kafka, counted once Kafka acknowledges them.

The producer gives a record up once it has waited its request timeout (40 s) for a
broker, or once its connection is lost; the simulator then sends it again (a second
later, then with each record it sends) until Kafka takes it, so that a run through a
Kafka outage delivers, and reports, every record it made. A record sent again arrives
after the ones its customer sent meanwhile; if the broker had written the first copy
(frozen, not gone), it is on the topic twice, under the same event id. A record Kafka
refuses for good (too large, malformed) is counted as refused and not sent again. One
log line says when an outage begins, one when Kafka takes records again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

from agents.batch_retries import outage

log = logging.getLogger(__name__)

RETRY_AFTER_S = 1.0

_Record = tuple[str, bytes, bytes]  # topic, key, value


class Producer(Protocol):
    """What of :class:`aiokafka.AIOKafkaProducer` the simulator uses."""

    async def send(self, topic: str, value: bytes, *, key: bytes) -> asyncio.Future[Any]: ...


class Deliveries:
    """Sends records, sending again those the producer gave up, and counts what Kafka
    acknowledged, by topic."""

    def __init__(
        self,
        producer: Producer,
        what: str = "records",
        retry_after_s: float = RETRY_AFTER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._producer = producer
        self._what = what  # as the log lines name the records
        self._retry_after_s = retry_after_s
        self._clock = clock
        self.acknowledged: Counter[str] = Counter()  # records Kafka took, by topic
        self.refused: Counter[str] = Counter()  # records Kafka refused for good, by topic
        self._in_flight: set[asyncio.Future[Any]] = set()
        self._failed: list[_Record] = []  # to send again
        self._retry_at = 0.0
        self._failing = False  # in an outage: said once, and once when it ends
        self._failures = 0  # deliveries failed in this outage

    @property
    def sent(self) -> int:
        """Records Kafka acknowledged, on every topic."""
        return self.acknowledged.total()

    async def send(self, topic: str, value: bytes, key: bytes) -> None:
        """Send a record without waiting for Kafka; first those given up, when due."""
        if self._failed and self._clock() >= self._retry_at:
            await self._send_again()
        await self._send((topic, key, value))

    async def settle(self) -> None:
        """Wait until Kafka has acknowledged (or refused) every record sent, sending
        again while it is away."""
        while self._in_flight or self._failed:
            if self._in_flight:
                await asyncio.wait(set(self._in_flight))
                await asyncio.sleep(0)  # their callbacks, if any still to run
            elif self._failed:
                await asyncio.sleep(max(0.0, self._retry_at - self._clock()))
                await self._send_again()

    async def _send_again(self) -> None:
        failed, self._failed = self._failed, []
        for record in failed:
            await self._send(record)

    async def _send(self, record: _Record) -> None:
        topic, key, value = record
        while True:
            try:  # waits for room while the producer's buffer is full, for 40 s at most
                future = await self._producer.send(topic, value, key=key)
                break
            except Exception as exc:
                if not outage(exc):
                    raise
                self._outage(exc)
        self._in_flight.add(future)
        future.add_done_callback(lambda done: self._delivered(record, done))

    def _delivered(self, record: _Record, done: asyncio.Future[Any]) -> None:
        self._in_flight.discard(done)
        exc = done.exception() if not done.cancelled() else None  # retrieved: not logged
        if done.cancelled() or (exc is not None and outage(exc)):
            self._failed.append(record)
            self._failures += 1
            self._outage(exc)
        elif exc is not None:
            self.refused[record[0]] += 1
            log.warning("Kafka refused one of the %s for good: %r", self._what, exc)
        else:
            self.acknowledged[record[0]] += 1
            if self._failing:
                self._failing = False
                log.warning("Kafka takes %s again; %d deliveries failed in the outage, each "
                            "sent again", self._what, self._failures)  # fmt: skip
                self._failures = 0

    def _outage(self, exc: BaseException | None) -> None:
        self._retry_at = self._clock() + self._retry_after_s  # a second after the last
        if not self._failing:
            self._failing = True
            log.warning("Kafka did not take %s (%r); sending them again until it takes them",
                        self._what, exc)  # fmt: skip
