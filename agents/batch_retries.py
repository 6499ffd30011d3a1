"""How the touchpoint agent sees a batch through: handle it (apply, decide), send what it
decided, confirm it (record the decisions), with retries.

A batch is decided once. When sending fails, the same decisions are sent and confirmed
again: deciding again would read features, budgets and contact history that the first
attempt may have changed already (a voucher's last unit counted, and then a decision
made without it under the same id). Once they are sent, only confirming is tried again:
nothing goes to Kafka, or is counted, twice. While Redis or Kafka is unavailable the
batch waits and retries without end; any other failure counts, and after
``max_attempts`` the batch is given up (dead-lettered). So is a batch one of whose
decisions or alerts Kafka refuses for good (a record too large, or malformed): waiting
would hold its partition up for ever. A dead letter Kafka refuses is not the batch's
failure: the worker sends it again reduced, or gives it up, and the batch goes on (see
:mod:`agents.reduced_letters`).

A worker that is told to stop waits no longer: a batch that fails while ``stopping()``
(or is still failing when the worker stops during a wait) is left as it is, unapplied
or partly applied, and so is a batch that comes once it is stopping (not started); but a
batch already sent is confirmed through an outage for a few seconds more
(``confirm_grace_s``), since the worker that reads it next would send it again;
:meth:`BatchRetries.run` says so (False): its events must not be acked, so that no
offset is committed past them and the worker that reads them next applies them (what
was applied already counts once). Otherwise the worker would never stop while Redis is
down: Faust waits, before it stops anything, for every batch under way to be done.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from agents.batch_result import BatchMemory, BatchResult, EventKey
from agents.letters import SourceRecord
from feature_store import StoreUnavailable

log = logging.getLogger(__name__)

OUTAGES = (TimeoutError, StoreUnavailable, OSError)
KAFKA_MODULES = ("aiokafka", "kafka", "faust")  # their errors are outages too, but:
# Kafka's answers that a record can never be written, whatever the wait
KAFKA_REFUSALS = frozenset({
    "MessageSizeTooLargeError", "RecordTooLargeError", "RecordListTooLargeError",
    "InvalidMessageError", "CorruptRecordException", "InvalidTimestampError",
})  # fmt: skip


def reason_of(exc: BaseException) -> str:
    """A retry's reason, as counted in ``moments_batch_retries_total{reason}``: the kind
    of error, every feature-store outage under one name (a reply lost is one too).

    >>> from feature_store import RepliesUnknown
    >>> reason_of(RepliesUnknown("TimeoutError", [0])), reason_of(TimeoutError())
    ('StoreUnavailable', 'TimeoutError')
    """
    return StoreUnavailable.__name__ if isinstance(exc, StoreUnavailable) else type(exc).__name__


def said_by_store(exc: BaseException) -> str:
    """What Redis said of a feature-store outage, for the log (the retries' label keeps
    one name): a full Redis reads apart from a lost connection. Its replies name no
    customer (key names are hashed).

    >>> said_by_store(StoreUnavailable("OutOfMemoryError: command not allowed"))
    ': OutOfMemoryError: command not allowed'
    >>> said_by_store(TimeoutError())
    ''
    """
    return f": {str(exc)[:200]}" if isinstance(exc, StoreUnavailable) and str(exc) else ""


def _kafka_error(exc: BaseException) -> bool:
    return type(exc).__module__.split(".")[0] in KAFKA_MODULES


def refusal_of(exc: BaseException | None) -> str | None:
    """The name of Kafka's answer that a record can never be written, said by ``exc`` or
    by what caused it (Faust wraps the producer's errors); None when it says none.

    >>> class MessageSizeTooLargeError(Exception): __module__ = "aiokafka.errors"
    >>> class ProducerSendError(Exception): __module__ = "faust.exceptions"
    >>> wrapped = ProducerSendError("Error while sending")
    >>> wrapped.__cause__ = MessageSizeTooLargeError("too large")
    >>> refusal_of(wrapped), refusal_of(ProducerSendError("no leader")), refusal_of(None)
    ('MessageSizeTooLargeError', None, None)
    """
    seen: set[int] = set()
    found: BaseException | None = exc
    while found is not None and id(found) not in seen:
        if _kafka_error(found) and type(found).__name__ in KAFKA_REFUSALS:
            return type(found).__name__
        seen.add(id(found))
        found = found.__cause__
    return None


def refused_by_kafka(exc: BaseException | None) -> bool:
    """Whether Kafka refused a record for good (:func:`refusal_of`)."""
    return refusal_of(exc) is not None


def outage(exc: BaseException) -> bool:
    """Whether ``exc`` says that Redis or Kafka cannot serve now (wait, then try again),
    not that something about the batch is wrong."""
    if refused_by_kafka(exc):
        return False
    return isinstance(exc, OUTAGES) or _kafka_error(exc)


def report(observe: Callable[..., None], *args: Any) -> None:
    """Tell an observer (metrics) what happened; its own failure is logged, and changes
    nothing about the batch."""
    try:
        observe(*args)
    except Exception:
        log.exception("could not report what became of a batch")


@dataclass(frozen=True, slots=True)
class BatchRetries:
    # handles a batch; its second argument keeps, from one attempt to the next, the events
    # the batch applied (a retry finds them applied, yet they are not duplicates)
    handle: Callable[[list[SourceRecord], Counter[EventKey]], Awaitable[BatchResult]]
    emit: Callable[[BatchResult], Awaitable[None]]
    confirm: Callable[[BatchResult], Awaitable[None]]
    # dead-letters a batch given up; False when the worker stopped before it could
    give_up: Callable[[list[SourceRecord], Exception], Awaitable[bool]]
    handled: Callable[[BatchResult], None]
    retrying: Callable[[str], None]
    max_attempts: int = 3
    backoff_max: float = 5.0
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep  # may end early on stopping
    stopping: Callable[[], bool] = lambda: False  # the worker is told to stop
    clock: Callable[[], float] = time.monotonic
    # how long a worker told to stop still tries to confirm a batch it has sent, through
    # an outage, before it leaves the batch (see _confirm_before_stopping); and its waits
    confirm_grace_s: float = 5.0
    pause: Callable[[float], Awaitable[None]] = asyncio.sleep

    async def run(self, records: list[SourceRecord]) -> bool:
        """See ``records`` through: True when they were handled or given up (dead-lettered),
        False when the worker stops before they could be (their events are not done)."""
        if self.stopping():  # not started: nothing of it is applied, all of it is read again
            return False
        delay = 0.1
        failures = 0
        result: BatchResult | None = None
        sent = False
        applied = BatchMemory()
        waiting = _Waiting(self.clock, len(records))
        while True:
            try:
                if result is None:
                    result = await self.handle(records, applied)
                if not sent:
                    await self.emit(result)
                    sent = True
                await self.confirm(result)
            except Exception as exc:
                waited_out = outage(exc)
                if not waited_out:
                    failures += 1
                    log.exception("batch of %d events failed (attempt %d)", len(records), failures)
                    if failures >= self.max_attempts:
                        if result is not None:  # letters that went out: not twice
                            lettered = {id(d.record) for d in result.dead_letters
                                        if sent or id(d) in result.delivered}  # fmt: skip
                            records = [r for r in records if id(r) not in lettered]
                            if not sent and result.delivered:
                                await self._confirm_delivered(result)
                        return await self.give_up(records, exc)
                reason, said = reason_of(exc), said_by_store(exc)
            else:
                waiting.over()
                report(self.handled, result)
                return True
            if not self.stopping():
                report(self.retrying, reason)
                waiting.retrying(f"{reason}{said}")
                await self.sleep(delay)
                delay = min(delay * 2, self.backoff_max)
            if self.stopping():
                if (
                    sent
                    and waited_out
                    and result is not None
                    and await self._confirm_before_stopping(result)
                ):
                    waiting.over()
                    report(self.handled, result)
                    return True
                log.warning("worker stopping: batch of %d events left not done (%s), "
                            "to be handled when read again", len(records), reason)  # fmt: skip
                return False

    async def _confirm_delivered(self, result: BatchResult) -> None:
        """Record the decisions and alerts Kafka took of a batch given up (Kafka refused
        another of its outputs for good): the re-drive of its letters decides their
        touchpoints as already decided, and sends them no second time."""
        try:
            await self.confirm(result.delivered_part())
        except Exception:
            log.exception(
                "could not record the decisions and alerts Kafka took of a batch "
                "given up: a re-drive of its letters sends them again"
            )

    async def _confirm_before_stopping(self, result: BatchResult) -> bool:
        """The batch's decisions went out, and the worker is told to stop while an outage
        keeps them from being confirmed: try for ``confirm_grace_s`` more, since the
        worker that reads a batch left not done sends its decisions again. Whether it was
        confirmed."""
        until = self.clock() + self.confirm_grace_s
        delay = 0.1
        while self.clock() + delay <= until:
            await self.pause(delay)
            delay = min(delay * 2, 1.0)
            try:
                await self.confirm(result)
                return True
            except Exception as exc:
                if not outage(exc):
                    return False
        return False


class _Waiting:
    """The log of one batch's retries: the first said at once, then one line a minute
    while it goes on, and one when the batch is done, saying how long it waited (a line
    per retry filled the log through an outage and never said when it ended)."""

    EVERY_S = 60.0

    def __init__(self, clock: Callable[[], float], size: int) -> None:
        self._clock, self._size = clock, size
        self._since: float | None = None
        self._said = 0.0
        self._attempts = 0

    def retrying(self, why: str) -> None:
        now = self._clock()
        self._attempts += 1
        if self._since is None:
            self._since = self._said = now
            log.warning("batch of %d events not done (%s); retrying", self._size, why)
        elif now - self._said >= self.EVERY_S:
            self._said = now
            log.warning("batch of %d events still not done after %.0f s, %d attempts (%s)",
                        self._size, now - self._since, self._attempts, why)  # fmt: skip

    def over(self) -> None:
        if self._since is not None:
            log.warning("batch of %d events done after %.0f s and %d retries",
                        self._size, self._clock() - self._since, self._attempts)  # fmt: skip
