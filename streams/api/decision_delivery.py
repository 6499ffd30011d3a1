"""Answered decisions on their way to ``next-best-offers``, however long Kafka is away.

The producer (idempotent) sends a batch it holds until Kafka takes it; a publication it
could not take (no room for its partition's batch within 40 s, no metadata for the
topic) or failed (given up with no leader for its partition, or its numbering broken:
see :mod:`streams.api.producer_renewal`) was answered already, so it is sent again (a
second later) until Kafka takes it, the process's room for records waiting for Kafka is full
(:class:`streams.api.publisher.PublisherFull`), Kafka refuses it for good (too large),
or the API stops: those are counted as publish failures. Nor is one sent, again or at
all, once this process knows its customer erased (the last day's erasures, its own and
those the erasures topic told of; the erasing request adds its customer before it
answers): no record naming a customer is made after their erasure, and one answered
before it would otherwise follow it onto the topic as long as Kafka stayed away. Those are
counted apart (``withheld``), not as failures; what the producer holds already (until
Kafka takes it) cannot be called back. One log line says the first retry of an
outage, then one a minute while it lasts; the decisions given up are told at once, then
in one line per reason every 5 s (at a stop in an outage, each batch answered fails: a
line each wrote thousands).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Container, Sequence

from agents.batch_retries import refused_by_kafka
from streams.api.publisher import KeyedPublisher, PublisherFull, Record, RecordTooLarge
from streams.api.throttled_counts import ThrottledCounts, line_per_reason

log = logging.getLogger(__name__)

# hears of the records settled, with their decision ids when the sender gave them
Settled = Callable[[Sequence[Record], Sequence[str] | None], None]
_Sent = tuple[Sequence[Record], Sequence[str] | None]

RETRY_AFTER_S = 1.0
SAY_EVERY_S = 60.0
GIVEN_UP_EVERY_S = 5.0
ERASED = "their customer was erased meanwhile (not sent)"


def _uncounted(count: int) -> None:
    """Counts nothing."""


class DecisionDelivery:
    """Publishes answered decisions, trying again while Kafka is away."""

    def __init__(
        self,
        publisher: KeyedPublisher,
        topic: str,
        failed: Callable[[int], None],
        retry_after_s: float = RETRY_AFTER_S,
        clock: Callable[[], float] = time.monotonic,
        settled: Settled | None = None,
        erased: Container[str] = frozenset(),
        withheld: Callable[[int], None] = _uncounted,
    ) -> None:
        """``settled(records, ids)`` hears of the records Kafka acknowledged, or that are
        given up for good (not those given up as the API stops with Kafka away: the
        outbox keeps them for another process), with their decision ids when the sender
        gave them (``None``: their JSON names them). ``erased``: the customers this
        process knows erased lately, whose records are not sent (``withheld`` counts
        them; they are settled, given up for good)."""
        self._publisher = publisher
        self._erased = erased
        self._withheld = withheld
        self._settled = settled
        self._topic = topic
        self._failed = failed  # counts the decisions given up
        self._retry_after_s = retry_after_s
        self._clock = clock
        self._stopping = False
        self._said_at: float | None = None  # when the outage was last told of
        self._retried = 0  # retries in this outage
        self._waiting: dict[asyncio.TimerHandle, _Sent] = {}  # retries to make
        self._retried_records = 0  # the records they hold
        # decisions given up, told a line per reason every few seconds (at a stop, the
        # drain's end says the rest: say_given_up)
        self._given_up = ThrottledCounts(
            line_per_reason(log, "%d decisions were not delivered to Kafka: %s"), GIVEN_UP_EVERY_S
        )

    def send(self, records: Sequence[Record], ids: Sequence[str] | None = None) -> None:
        """Publish ``records`` (keyed decisions; ``ids``, their decision ids, for
        ``settled``) without waiting for Kafka."""
        records, ids = self._not_erased(records, ids)
        if records:
            delivery = self._publisher.publish(self._topic, records)
            delivery.add_done_callback(lambda done: self._delivered(records, ids, done))

    def _not_erased(self, records: Sequence[Record], ids: Sequence[str] | None) -> _Sent:
        """``records`` (and their ``ids``) but those of customers erased lately: those
        are withheld, and settled."""
        keep = [key.decode("utf-8", "replace") not in self._erased for key, _ in records]
        if all(keep):
            return records, ids
        gone = [r for r, kept in zip(records, keep, strict=True) if not kept]
        self._withheld(len(gone))
        self._given_up.add((ERASED,), len(gone))
        if self._settled is not None:
            self._settled(gone, None if ids is None else _picked(ids, keep, False))
        kept = [r for r, kept in zip(records, keep, strict=True) if kept]
        return kept, None if ids is None else _picked(ids, keep, True)

    def stop(self) -> None:
        """The API stops: the retries waiting go at once, for the last time; what fails
        from now on is given up (counted), not tried again."""
        self._stopping = True
        waiting, self._waiting = self._waiting, {}
        self._retried_records = 0
        for retry, (records, ids) in waiting.items():
            retry.cancel()
            self.send(records, ids)

    def _delivered(
        self, records: Sequence[Record], ids: Sequence[str] | None, delivery: asyncio.Future[None]
    ) -> None:
        error = None if delivery.cancelled() else delivery.exception()
        if not delivery.cancelled() and error is None:
            if self._settled is not None:
                self._settled(records, ids)
            if self._said_at is not None and not self._retried_records:
                log.warning("decisions reach Kafka again, after %d retries", self._retried)
                self._said_at, self._retried = None, 0
            return
        if self._stopping or not _worth_retrying(error):
            self._give_up(len(records), repr(error))
            if self._settled is not None and not (self._stopping and _worth_retrying(error)):
                self._settled(records, ids)  # (Kafka away at a stop: left in the outbox)
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
            self.send(records, ids)

        handle = loop.call_later(self._retry_after_s, again)
        self._waiting[handle] = (records, ids)

    def _give_up(self, count: int, why: str) -> None:
        self._failed(count)
        self._given_up.add((why,), count)

    def say_given_up(self) -> None:
        """Log now the decisions given up and not logged yet (the API's last words)."""
        self._given_up.flush()


def _picked(ids: Sequence[str], keep: Sequence[bool], kept: bool) -> list[str]:
    """The ``ids`` whose ``keep`` is ``kept``.

    >>> _picked(["d1", "d2", "d3"], [True, False, True], False)
    ['d2']
    """
    return [i for i, k in zip(ids, keep, strict=True) if k is kept]


def _worth_retrying(error: BaseException | None) -> bool:
    """Whether a publication failed for Kafka's being away (not: the room for records
    waiting is full, a record is too large, Kafka refused one for good)."""
    if error is None or isinstance(error, PublisherFull | RecordTooLarge):
        return False
    return not refused_by_kafka(error)
