"""How the touchpoint agent sees a batch through: handle it (apply, decide), send what it
decided, confirm it (record the decisions), with retries.

A batch is decided once. When sending fails, the same decisions are sent and confirmed
again: deciding again would read features, budgets and contact history that the first
attempt may have changed already (a voucher's last unit counted, and then a decision
made without it under the same id). Once they are sent, only confirming is tried again:
nothing goes to Kafka, or is counted, twice. While Redis or Kafka is unavailable the
batch waits and retries without end; any other failure counts, and after
``max_attempts`` the batch is given up (dead-lettered). So is a batch that Kafka
refuses for good (a record too large, or malformed): waiting would hold its partition
up for ever.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from agents.touchpoint_handler import BatchResult, SourceRecord
from feature_store import StoreUnavailable

log = logging.getLogger(__name__)

OUTAGES = (TimeoutError, StoreUnavailable, OSError)
KAFKA_MODULES = ("aiokafka", "kafka", "faust")  # their errors are outages too, but:
# Kafka's answers that a record can never be written, whatever the wait
KAFKA_REFUSALS = frozenset({
    "MessageSizeTooLargeError", "RecordTooLargeError", "RecordListTooLargeError",
    "InvalidMessageError", "CorruptRecordException", "InvalidTimestampError",
})  # fmt: skip


def _kafka_error(exc: BaseException) -> bool:
    return type(exc).__module__.split(".")[0] in KAFKA_MODULES


def refused_by_kafka(exc: BaseException) -> bool:
    """Whether Kafka refused a record for good, said by ``exc`` or by what caused it (Faust
    wraps the producer's errors).

    >>> class MessageSizeTooLargeError(Exception): __module__ = "aiokafka.errors"
    >>> class ProducerSendError(Exception): __module__ = "faust.exceptions"
    >>> wrapped = ProducerSendError("Error while sending")
    >>> wrapped.__cause__ = MessageSizeTooLargeError("too large")
    >>> refused_by_kafka(wrapped), refused_by_kafka(ProducerSendError("no leader"))
    (True, False)
    """
    seen: set[int] = set()
    found: BaseException | None = exc
    while found is not None and id(found) not in seen:
        if _kafka_error(found) and type(found).__name__ in KAFKA_REFUSALS:
            return True
        seen.add(id(found))
        found = found.__cause__
    return False


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
    # handles a batch; its second argument keeps, from one attempt to the next, the ids of
    # the events the batch applied (a retry finds them applied, yet they are not duplicates)
    handle: Callable[[list[SourceRecord], Counter[str]], Awaitable[BatchResult]]
    emit: Callable[[BatchResult], Awaitable[None]]
    confirm: Callable[[BatchResult], Awaitable[None]]
    give_up: Callable[[list[SourceRecord], Exception], Awaitable[None]]
    handled: Callable[[BatchResult], None]
    retrying: Callable[[str], None]
    max_attempts: int = 3
    backoff_max: float = 5.0
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    async def run(self, records: list[SourceRecord]) -> None:
        delay = 0.1
        failures = 0
        result: BatchResult | None = None
        sent = False
        applied: Counter[str] = Counter()
        while True:
            try:
                if result is None:
                    result = await self.handle(records, applied)
                if not sent:
                    await self.emit(result)
                    sent = True
                await self.confirm(result)
            except Exception as exc:
                if not outage(exc):
                    failures += 1
                    log.exception("batch of %d events failed (attempt %d)", len(records), failures)
                    if failures >= self.max_attempts:
                        await self.give_up(records, exc)
                        return
                reason = type(exc).__name__
            else:
                report(self.handled, result)
                return
            report(self.retrying, reason)
            log.warning(
                "batch of %d events not done (%s); retrying in %.1fs", len(records), reason, delay
            )
            await self.sleep(delay)
            delay = min(delay * 2, self.backoff_max)
