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
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, MutableSet
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Protocol

from agents.batch_result import BatchResult, FailedRecord
from agents.batch_retries import BatchRetries, report
from agents.letter_sends import Send, refused_whole, send_once, send_reduced, whole_letter
from agents.letters import PartitionOf, SourceRecord, source_record
from agents.touchpoint_batches import take_batches
from agents.touchpoint_handler import TouchpointHandler
from agents.touchpoint_types import type_of
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

    def contacts_refused(self, count: int) -> None: ...

    def budgets_refused(self, count: int) -> None: ...

    def retrying(self, reason: str) -> None: ...

    def letter_refused(self, outcome: str) -> None: ...


def hold(events: list[Any], unacked: MutableSet[Any]) -> None:
    """Keep ``events`` from being taken as done, and Faust from waiting for them: each of
    their messages gets one more reader (as Faust counts the streams a message is
    delivered to) that never acks it, so the stream's ack of it does not mark its offset
    to be committed; and it leaves ``unacked`` (the consumer's messages under way, which
    Faust waits for before it stops)."""
    for event in events:
        event.message.incref()
        unacked.discard(event.message)


BatchesOf = Callable[[Any, int, float], AsyncGenerator[list[Any], None]]
"""Batches of a stream's events: ``(stream, max_, within)``, acked once done with."""


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
    partition_of: PartitionOf | None = None,
    batches_of: BatchesOf = take_batches,
) -> Any:
    """Register the agent on a Faust ``app``; topics are Faust topics of raw bytes.
    ``models_ready`` is awaited once, before the first batch is handled: until then the
    process may still hold the empty models it started with (it returns when the first
    load of the published snapshots has been tried, or has taken too long).
    ``stopping``: whether the worker is told to stop; ``sleep``: waits between attempts,
    and may end early when the worker stops (Faust's ``app.sleep``); ``partition_of``: the
    partition Kafka's default partitioner gives a key (a record elsewhere is counted as
    misrouted); ``batches_of``: how its events are batched (:func:`take_batches`)."""

    async def emit(result: BatchResult) -> None:
        await handler.without_erased(result)  # erased meanwhile: nothing more about them
        refused = await handler.reserve(result)  # their budgets and contacts, within limits
        if refused.contacts:
            report(observer.contacts_refused, refused.contacts)
        if refused.budgets:
            report(observer.budgets_refused, refused.budgets)

        def to_customer(item: NextBestOffer | Intervention) -> dict[str, Any]:
            return {"key": item.customer_id.encode(), "value": encode_decision(item)}

        outputs: list[tuple[object, Send, dict[str, Any]]] = [  # what, where, its record
            *((d, outlets.decisions.send, to_customer(d)) for d in result.decisions),
            *((a, outlets.interventions.send, to_customer(a)) for a in result.interventions),
            *((e, outlets.risk_examples.send, {"key": None, "value": encode_risk_example(e)})
              for e in result.risk_examples),
            *((a, outlets.held_out.send, to_customer(a)) for a in result.held_out),
            *((f, outlets.dead_letters.send, whole_letter(f)) for f in result.dead_letters),
        ]  # fmt: skip
        failures: dict[int, BaseException] = {}
        try:
            await send_once(outputs, result.delivered, stopping, failures)
        except Exception as exc:  # letters refused for good go again reduced, or are dropped
            whole = refused_whole(result.dead_letters, result.delivered, failures)
            if not whole:
                raise
            result.letters_dropped += await send_reduced(
                whole, outlets.dead_letters.send, result.delivered, observer, stopping
            )
            left = [failures.get(id(o)) for o, _, _ in outputs if id(o) not in result.delivered]
            if left:  # the other outputs' failure: retried as before
                raise next((e for e in left if e is not None), exc)  # noqa: B904
        for decision in result.decisions:
            report(observer.decision_sent, decision)
        for alert in result.interventions:
            report(observer.intervention_sent, alert)
        for alert in result.held_out:
            report(observer.intervention_held_out, alert)
        if len(result.dead_letters) > result.letters_dropped:
            report(observer.dead_lettered, len(result.dead_letters) - result.letters_dropped)

    async def set_aside(records: list[SourceRecord], error: str) -> bool:
        """Dead-letter a whole batch with ``error``, once Kafka takes the letters; False
        when the worker stops before Kafka took them."""
        result = BatchResult(
            dead_letters=[FailedRecord(r, error, i) for i, r in enumerate(records)]
        )
        result.results.extend((type_of(r), "failed") for r in records)
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
                observer.retrying("dead_letter")  # counted: the batch waits on this
                await sleep(retry_backoff_max)
        report(observer.batch_handled, result)
        return True

    async def give_up(records: list[SourceRecord], exc: Exception) -> bool:
        """A batch that keeps failing for a reason other than an outage: dead-letter it."""
        return await set_aside(records, f"batch failed {max_attempts} times: {_reason(exc)}")

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
            return await set_aside(records, f"batch failed: {_reason(exc)}")

    @app.agent(source, name="touchpoints")  # type: ignore[untyped-decorator]
    async def touchpoints(stream: Any) -> None:
        waiting = models_ready
        async with aclosing(batches_of(stream, batch_size, batch_within)) as batches:
            async for events in batches:
                if waiting is not None:  # once: the first batch may come before the models
                    await waiting()
                    waiting = None
                taken_ms = int(time.time() * 1000)  # before any attempt to apply them
                records = [source_record(e.message, taken_ms, partition_of) for e in events]
                if not await see_through(records):
                    hold(events, app.consumer.unacked)  # the worker stops: not done

    return touchpoints
