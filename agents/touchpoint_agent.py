"""The Faust agent for the ``touchpoints`` topic: a thin shell around the handler.

It takes events in batches, hands them to :class:`TouchpointHandler`, sends the
decisions and dead letters, waits until Kafka has them, and only then lets Faust ack
the batch. While Redis or Kafka is unavailable it waits and retries the same batch,
so no offset is committed past an event that was not applied (see
:mod:`agents.batch_retries`). Faust acks a batch whatever becomes of it, even when the
agent raises: a fault in Moments itself dead-letters the batch with the reason, so that
no event is acked unseen.

A worker told to stop (SIGTERM) does not wait out an outage: Faust, before it stops
anything, waits for the batch under way to be acked, and it never would be. The batch is
held instead (:func:`hold`): Faust no longer waits for it, its ack counts for nothing
and no offset is committed past it; the worker that reads it next applies it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, MutableSet
from dataclasses import dataclass
from typing import Any, Protocol

from agents.batch_retries import BatchRetries, report
from agents.letter_headers import (
    ERROR,
    FIRST_HANDLED,
    FIRST_LETTERED,
    KEY_TRUNCATED_FROM,
    LETTER_NAME_MAX,
    REDRIVEN_FROM,
    SOURCE_OFFSET,
    SOURCE_PARTITION,
    SOURCE_TOPIC,
    TRUNCATED_FROM,
)
from agents.touchpoint_handler import BatchResult, DeadLetter, SourceRecord, TouchpointHandler
from schemas import Intervention, NextBestOffer, encode_decision
from schemas.risk import encode_risk_example

log = logging.getLogger(__name__)


class PipelineObserver(Protocol):
    """Where the agent reports what happened (metrics live in ``streams``)."""

    def batch_handled(self, result: BatchResult) -> None: ...

    def decision_sent(self, decision: NextBestOffer) -> None: ...

    def intervention_sent(self, intervention: Intervention) -> None: ...

    def intervention_held_out(self, intervention: Intervention) -> None: ...

    def dead_lettered(self, count: int) -> None: ...

    def retrying(self, reason: str) -> None: ...


def _as_bytes(value: Any) -> bytes | None:
    """Bytes as they are, text as UTF-8; anything else (None) is nothing."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return value.encode() if isinstance(value, str) else None


def redriven_from(headers: Any) -> bytes | None:
    """The ``redriven-from`` header of a record (Kafka headers as pairs or a mapping); a
    header without a value, or headers that cannot be read, are no header.

    >>> redriven_from([("redriven-from", None), ("redriven-from", b"touchpoints-dlq:0:7")])
    b'touchpoints-dlq:0:7'
    >>> redriven_from([(b"redriven-from", None)]), redriven_from(42)
    (None, None)
    """
    named = _header(headers, REDRIVEN_FROM)
    return named[:LETTER_NAME_MAX] if named else None


def first_lettered(headers: Any) -> bytes | None:
    """The ``first-dead-lettered`` header of a record sent back, if it is a time.

    >>> first_lettered([("first-dead-lettered", b"1700000000000")])
    b'1700000000000'
    >>> first_lettered([("first-dead-lettered", b"soon")]), first_lettered(None)
    (None, None)
    """
    when = _header(headers, FIRST_LETTERED)
    return when if when and len(when) <= 20 and when.isdigit() else None


def _header(headers: Any, wanted: str) -> bytes | None:
    try:
        pairs = list(headers.items() if isinstance(headers, Mapping) else headers or ())
        for name, value in pairs:
            found = _as_bytes(value) if _as_bytes(name) == wanted.encode() else None
            if found:
                return found
    except (TypeError, ValueError):  # not pairs
        return None
    return None


def source_record(message: Any, taken_ms: int | None = None) -> SourceRecord:
    """What the handler needs of a Kafka message; a key or value that is not bytes reads
    as none (a record without a value is dead-lettered), an unreadable header as none.
    ``taken_ms``: when the worker took it to handle it."""
    return SourceRecord(
        topic=str(message.topic),
        partition=int(message.partition),
        offset=int(message.offset),
        key=_as_bytes(message.key),
        value=_as_bytes(message.value),
        redriven_from=redriven_from(getattr(message, "headers", None)),
        first_lettered=first_lettered(getattr(message, "headers", None)),
        taken_ms=taken_ms,
        produced_ms=_produced_ms(message),
    )


def _produced_ms(message: Any) -> int | None:
    """The record's Kafka timestamp in milliseconds (Faust gives seconds), if it has one.

    >>> from types import SimpleNamespace
    >>> _produced_ms(SimpleNamespace(timestamp=1795392000.25)), _produced_ms(SimpleNamespace())
    (1795392000250, None)
    """
    stamp = getattr(message, "timestamp", None)
    if isinstance(stamp, int | float) and stamp > 0:
        return int(stamp * 1000)
    return None


# The most a letter holds, key, value and headers together (as Kafka counts a record):
# it stays below the producers' and brokers' default limits (about 1 MB), which a record
# just below the broker's limit would pass once headers are added; a letter that cannot
# be written would hold its partition up.
LETTER_MAX = 900_000
# The longest key a letter keeps (a customer id is at most 256 characters); a longer
# one is replaced by its SHA-256 digest, so that a letter of any record fits.
LETTER_KEY_MAX = 1024
ERROR_MAX = 1000  # the longest reason a letter gives (characters)


def dead_letter_headers(record: SourceRecord, error: str) -> list[tuple[str, bytes]]:
    """Where the record came from and why it is set aside; a record sent back from the
    dead-letter topic before keeps naming that letter, so repeated failures show."""
    headers = [
        (SOURCE_TOPIC, record.topic.encode()),
        (SOURCE_PARTITION, str(record.partition).encode()),
        (SOURCE_OFFSET, str(record.offset).encode()),
        (ERROR, error[:ERROR_MAX].encode()),
    ]
    if record.redriven_from:
        headers.append((REDRIVEN_FROM, record.redriven_from[:LETTER_NAME_MAX]))
    if record.first_lettered:
        headers.append((FIRST_LETTERED, record.first_lettered))
    if record.taken_ms is not None:
        headers.append((FIRST_HANDLED, str(record.taken_ms).encode()))
    return headers


def letter_key(key: bytes | None) -> bytes | None:
    """The key of a record's letter: the record's own, or one longer than
    :data:`LETTER_KEY_MAX` as ``sha256:`` and its hex digest (the same key, the same
    digest).

    >>> letter_key(b"cust-1"), letter_key(b"k" * 5000)[:15]
    (b'cust-1', b'sha256:622b8b1d')
    """
    if key is None or len(key) <= LETTER_KEY_MAX:
        return key
    return b"sha256:" + hashlib.sha256(key).hexdigest().encode()


def letter_size(key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> int:
    """A letter's bytes as Kafka counts them against its limits (less a few of framing)."""
    named = sum(len(name.encode()) + len(content) for name, content in headers)
    return len(key or b"") + len(value or b"") + named


def dead_letter(record: SourceRecord, error: str) -> tuple[bytes | None, list[tuple[str, bytes]]]:
    """The value and headers of the letter for ``record`` (its key is :func:`letter_key`,
    with a ``key-truncated-from`` header when that is not the record's own): the record
    unchanged, within :data:`LETTER_MAX` in all, key and headers included. A value that
    does not fit is cut short, with a ``value-truncated-from`` header: such a letter is
    for reading, and never sent back.

    >>> big = SourceRecord("touchpoints", 0, 7, b"c", b"x" * LETTER_MAX)
    >>> value, headers = dead_letter(big, "invalid: too long")
    >>> headers[-1], letter_size(big.key, value, headers) == LETTER_MAX
    (('value-truncated-from', b'900000'), True)
    >>> long_key = SourceRecord("touchpoints", 0, 8, b"c" * 150_000, b"x" * 850_000)
    >>> value, headers = dead_letter(long_key, "invalid: too long")
    >>> headers[-1], len(letter_key(long_key.key)), len(value)
    (('key-truncated-from', b'150000'), 71, 850000)
    """
    headers = dead_letter_headers(record, error)
    key, value = letter_key(record.key), record.value
    if key != record.key and record.key is not None:
        headers.append((KEY_TRUNCATED_FROM, str(len(record.key)).encode()))
    if value is not None and letter_size(key, value, headers) > LETTER_MAX:
        headers.append((TRUNCATED_FROM, str(len(value)).encode()))
        value = value[: max(LETTER_MAX - letter_size(key, None, headers), 0)]
    return value, headers


def letter(record: SourceRecord, error: str) -> tuple[bytes | None, bytes | None, list[Any]]:
    """The letter for ``record``, whole: its key (:func:`letter_key`), value and headers
    (:func:`dead_letter`)."""
    value, headers = dead_letter(record, error)
    return letter_key(record.key), value, headers


def hold(events: list[Any], unacked: MutableSet[Any]) -> None:
    """Keep ``events`` from being taken as done, and Faust from waiting for them: each of
    their messages gets one more reader (as Faust counts the streams a message is
    delivered to) that never acks it, so the stream's ack of it does not mark its offset
    to be committed; and it leaves ``unacked`` (the consumer's messages under way, which
    Faust waits for before it stops)."""
    for event in events:
        event.message.incref()
        unacked.discard(event.message)


def _never() -> bool:
    return False


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True, slots=True)
class Outlets:
    """The Faust topics (of raw bytes) the agent sends to."""

    decisions: Any
    interventions: Any
    risk_examples: Any
    dead_letters: Any
    held_out: Any  # interventions raised for the hold-out group, never shown


def register_touchpoint_agent(
    app: Any,
    source: Any,
    outlets: Outlets,
    handler: TouchpointHandler,
    observer: PipelineObserver,
    batch_size: int = 200,
    batch_within: float = 0.01,
    retry_backoff_max: float = 5.0,
    max_attempts: int = 3,
    models_ready: Callable[[], Awaitable[object]] | None = None,
    stopping: Callable[[], bool] = _never,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Any:
    """Register the agent on a Faust ``app``; topics are Faust topics of raw bytes.
    ``models_ready`` is awaited once, before the first batch is handled: until then the
    process may still hold the empty models it started with (it returns when the first
    load of the published snapshots has been tried, or has taken too long).
    ``stopping``: whether the worker is told to stop; ``sleep``: waits between attempts,
    and may end early when the worker stops (Faust's ``app.sleep``)."""

    async def emit(result: BatchResult) -> None:
        await handler.without_erased(result)  # erased meanwhile: nothing more about them
        pending: list[Awaitable[Any]] = []
        for decision in result.decisions:
            pending.append(
                await outlets.decisions.send(
                    key=decision.customer_id.encode(), value=encode_decision(decision)
                )
            )
        for alert in result.interventions:
            pending.append(
                await outlets.interventions.send(
                    key=alert.customer_id.encode(), value=encode_decision(alert)
                )
            )
        for example in result.risk_examples:
            pending.append(
                await outlets.risk_examples.send(key=None, value=encode_risk_example(example))
            )
        for alert in result.held_out:
            pending.append(
                await outlets.held_out.send(
                    key=alert.customer_id.encode(), value=encode_decision(alert)
                )
            )
        for failed in result.dead_letters:
            key, value, headers = letter(failed.record, failed.error)
            pending.append(await outlets.dead_letters.send(key=key, value=value, headers=headers))
        await asyncio.gather(*pending)
        for decision in result.decisions:
            report(observer.decision_sent, decision)
        for alert in result.interventions:
            report(observer.intervention_sent, alert)
        for alert in result.held_out:
            report(observer.intervention_held_out, alert)
        if result.dead_letters:
            report(observer.dead_lettered, len(result.dead_letters))

    async def set_aside(records: list[SourceRecord], error: str) -> bool:
        """Dead-letter a whole batch with ``error``, once Kafka takes the letters; False
        when the worker stops before Kafka took them."""
        result = BatchResult(dead_letters=[DeadLetter(r, error) for r in records])
        result.results.extend(("unknown", "failed") for _ in records)
        while True:
            try:
                await emit(result)
                break
            except Exception:
                if stopping():
                    log.warning("worker stopping: a failed batch of %d events is not "
                                "dead-lettered, to be handled again", len(records))  # fmt: skip
                    return False
                log.exception("could not dead-letter a failed batch; retrying")
                await sleep(retry_backoff_max)
        report(observer.batch_handled, result)
        return True

    async def give_up(records: list[SourceRecord], exc: Exception) -> bool:
        """A batch that keeps failing for a reason other than an outage: dead-letter it."""
        return await set_aside(records, f"batch failed {max_attempts} times: {_reason(exc)}"[:500])

    batches = BatchRetries(
        handle=handler.handle, emit=emit, confirm=handler.confirm, give_up=give_up,
        handled=observer.batch_handled, retrying=observer.retrying,
        max_attempts=max_attempts, backoff_max=retry_backoff_max, sleep=sleep, stopping=stopping,
    )  # fmt: skip

    async def see_through(records: list[SourceRecord]) -> bool:
        """Handle a batch, or dead-letter it with the reason: Faust acks it either way.
        False when the worker stops first: the batch is not done, and must be held."""
        try:
            return await batches.run(records)
        except Exception as exc:  # a fault in Moments itself; cancellation goes on
            log.exception("batch of %d events failed unexpectedly", len(records))
            return await set_aside(records, f"batch failed: {_reason(exc)}"[:500])

    @app.agent(source, name="touchpoints")  # type: ignore[untyped-decorator]
    async def touchpoints(stream: Any) -> None:
        waiting = models_ready
        async for events in stream.take_events(batch_size, within=batch_within):
            if waiting is not None:  # once: the first batch may come before the models
                await waiting()
                waiting = None
            taken_ms = int(time.time() * 1000)  # before any attempt to apply them
            if not await see_through([source_record(e.message, taken_ms) for e in events]):
                hold(events, app.consumer.unacked)  # the worker stops: they are not done

    return touchpoints
