"""The Faust agent for the ``touchpoints`` topic: a thin shell around the handler.

It takes events in batches, hands them to :class:`TouchpointHandler`, sends the
decisions and dead letters, waits until Kafka has them, and only then lets Faust ack
the batch. While Redis or Kafka is unavailable it waits and retries the same batch,
so no offset is committed past an event that was not applied (see
:mod:`agents.batch_retries`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from agents.batch_retries import BatchRetries
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


REDRIVEN_FROM = "redriven-from"  # the header ``moments dead-letters --redrive`` sets


def redriven_from(headers: Any) -> bytes | None:
    """The ``redriven-from`` header of a record (Kafka headers as pairs or a mapping)."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    return next((bytes(v) for k, v in pairs if k == REDRIVEN_FROM), None)


TRUNCATED_FROM = "value-truncated-from"  # the original length of a letter cut short
# The most of a record's value a letter keeps: with its headers it stays below the
# producers' and brokers' default limits (about 1 MB), which a record just below the
# broker's limit would pass once headers are added; a letter that cannot be written
# would hold its partition up for good.
LETTER_VALUE_MAX = 900_000


def dead_letter_headers(record: SourceRecord, error: str) -> list[tuple[str, bytes]]:
    """Where the record came from and why it is set aside; a record sent back from the
    dead-letter topic before keeps naming that letter, so repeated failures show."""
    headers = [
        ("source-topic", record.topic.encode()),
        ("source-partition", str(record.partition).encode()),
        ("source-offset", str(record.offset).encode()),
        ("error", error.encode()),
    ]
    if record.redriven_from:
        headers.append((REDRIVEN_FROM, record.redriven_from))
    return headers


def dead_letter(record: SourceRecord, error: str) -> tuple[bytes | None, list[tuple[str, bytes]]]:
    """The value and headers of the letter for ``record``: the record unchanged, or for
    one too large to be written again with headers, its first
    :data:`LETTER_VALUE_MAX` bytes and a ``value-truncated-from`` header (such a letter
    is for reading: it is never sent back).

    >>> big = SourceRecord("touchpoints", 0, 7, b"c", b"x" * (LETTER_VALUE_MAX + 1))
    >>> value, headers = dead_letter(big, "invalid: too long")
    >>> len(value), headers[-1]
    (900000, ('value-truncated-from', b'900001'))
    """
    headers = dead_letter_headers(record, error)
    value = record.value
    if value is not None and len(value) > LETTER_VALUE_MAX:
        headers.append((TRUNCATED_FROM, str(len(value)).encode()))
        value = value[:LETTER_VALUE_MAX]
    return value, headers


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
) -> Any:
    """Register the agent on a Faust ``app``; topics are Faust topics of raw bytes."""

    async def emit(result: BatchResult) -> None:
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
        for letter in result.dead_letters:
            value, headers = dead_letter(letter.record, letter.error)
            pending.append(
                await outlets.dead_letters.send(key=letter.record.key, value=value, headers=headers)
            )
        await asyncio.gather(*pending)
        for decision in result.decisions:
            observer.decision_sent(decision)
        for alert in result.interventions:
            observer.intervention_sent(alert)
        for alert in result.held_out:
            observer.intervention_held_out(alert)
        if result.dead_letters:
            observer.dead_lettered(len(result.dead_letters))

    async def give_up(records: list[SourceRecord], exc: Exception) -> None:
        """A batch that keeps failing for a reason other than an outage: dead-letter it."""
        error = f"batch failed {max_attempts} times: {type(exc).__name__}: {exc}"[:500]
        result = BatchResult(dead_letters=[DeadLetter(r, error) for r in records])
        result.results.extend(("unknown", "failed") for _ in records)
        while True:
            try:
                await emit(result)
                observer.batch_handled(result)
                return
            except Exception:
                log.exception("could not dead-letter a failed batch; retrying")
                await asyncio.sleep(retry_backoff_max)

    batches = BatchRetries(
        handle=handler.handle, emit=emit, confirm=handler.confirm, give_up=give_up,
        handled=observer.batch_handled, retrying=observer.retrying,
        max_attempts=max_attempts, backoff_max=retry_backoff_max,
    )  # fmt: skip

    @app.agent(source, name="touchpoints")  # type: ignore[untyped-decorator]
    async def touchpoints(stream: Any) -> None:
        async for events in stream.take_events(batch_size, within=batch_within):
            records = [
                SourceRecord(
                    topic=e.message.topic,
                    partition=e.message.partition,
                    offset=e.message.offset,
                    key=e.message.key,
                    value=e.message.value,
                    redriven_from=redriven_from(e.message.headers),
                )
                for e in events
            ]
            await batches.run(records)

    return touchpoints
