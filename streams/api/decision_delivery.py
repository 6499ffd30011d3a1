"""Answered decisions on their way to ``next-best-offers``, however long Kafka is away.

The producer gives a record up once it has waited its request timeout (40 s) for a
broker; a decision was answered already, so it is sent again (a second later) until
Kafka takes it, the process's room for records waiting for Kafka is full
(:class:`streams.api.publisher.PublisherFull`), Kafka refuses it for good (too large),
or the API stops: those are counted as publish failures. One log line says the first
retry of an outage, then one a minute while it lasts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from agents.batch_retries import refused_by_kafka
from streams.api.publisher import KeyedPublisher, PublisherFull, Record, RecordTooLarge

log = logging.getLogger(__name__)

RETRY_AFTER_S = 1.0
SAY_EVERY_S = 60.0


class DecisionDelivery:
    """Publishes answered decisions, trying again while Kafka is away."""

    def __init__(
        self,
        publisher: KeyedPublisher,
        topic: str,
        failed: Callable[[int], None],
        retry_after_s: float = RETRY_AFTER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._publisher = publisher
        self._topic = topic
        self._failed = failed  # counts the decisions given up
        self._retry_after_s = retry_after_s
        self._clock = clock
        self._stopping = False
        self._said_at: float | None = None  # when the outage was last told of
        self._retried = 0  # retries in this outage
        self._waiting: dict[asyncio.TimerHandle, Sequence[Record]] = {}  # retries to make
        self._retried_records = 0  # the records they hold

    def send(self, records: Sequence[Record]) -> None:
        """Publish ``records`` (keyed decisions) without waiting for Kafka."""
        if records:
            delivery = self._publisher.publish(self._topic, records)
            delivery.add_done_callback(lambda done: self._delivered(records, done))

    def stop(self) -> None:
        """The API stops: the retries waiting go at once, for the last time; what fails
        from now on is given up (counted), not tried again."""
        self._stopping = True
        waiting, self._waiting = self._waiting, {}
        self._retried_records = 0
        for retry, records in waiting.items():
            retry.cancel()
            self.send(records)

    def _delivered(self, records: Sequence[Record], delivery: asyncio.Future[None]) -> None:
        error = None if delivery.cancelled() else delivery.exception()
        if not delivery.cancelled() and error is None:
            if self._said_at is not None and not self._retried_records:
                log.warning("decisions reach Kafka again, after %d retries", self._retried)
                self._said_at, self._retried = None, 0
            return
        if self._stopping or not _worth_retrying(error):
            log.warning("%d decisions were not delivered to Kafka: %r", len(records), error)
            self._failed(len(records))
            return
        self._retried += 1
        now = self._clock()
        if self._said_at is None or now - self._said_at >= SAY_EVERY_S:
            log.warning("decisions could not reach Kafka (%r); sending them again until it "
                        "takes them (%d retries so far)", error, self._retried)  # fmt: skip
            self._said_at = now
        self._retried_records += len(records)
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle

        def again() -> None:
            self._waiting.pop(handle, None)
            self._retried_records -= len(records)
            self.send(records)

        handle = loop.call_later(self._retry_after_s, again)
        self._waiting[handle] = records


def _worth_retrying(error: BaseException | None) -> bool:
    """Whether a publication failed for Kafka's being away (not: the room for records
    waiting is full, a record is too large, Kafka refused one for good)."""
    if error is None or isinstance(error, PublisherFull | RecordTooLarge):
        return False
    return not refused_by_kafka(error)
