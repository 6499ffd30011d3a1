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
from collections.abc import Awaitable, Callable, MutableSet
from dataclasses import dataclass
from typing import Any, Protocol

from agents.batch_result import BatchResult, FailedRecord
from agents.batch_retries import BatchRetries, refusal_of, refused_by_kafka, report
from agents.letters import PartitionOf, SourceRecord, letter, source_record
from agents.reduced_letters import REDUCED_KEEPS, reduced_letter
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


def _never() -> bool:
    return False


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


STOP_CHECK_S = 0.5  # how often a wait for Kafka's deliveries looks whether to stop


async def _send_once(
    outputs: list[tuple[object, Any, dict[str, Any]]],
    delivered: dict[int, object],
    stopping: Callable[[], bool] = _never,
    failures: dict[int, BaseException] | None = None,
) -> None:
    """Send each output Kafka has not taken yet (``delivered``, by identity, from an
    earlier attempt at the batch) and wait for them all; what Kafka takes is added to
    ``delivered``, so that a retry sends only the rest (a decision delivered to one
    partition while another's broker was away went out again with the whole batch).
    Raises the first failure, once every delivery asked for has ended; or, once the
    worker is told to stop while some have not (Kafka away: they end only when the
    producer gives them up), a :class:`TimeoutError`, an outage that leaves the batch
    not done. ``failures``: where each output's own failure is noted, by identity."""
    asked: list[tuple[object, asyncio.Future[Any]]] = []
    failure: BaseException | None = None
    noted: dict[int, BaseException] = {} if failures is None else failures
    for item, outlet, record in outputs:
        if id(item) in delivered:
            continue
        try:
            asked.append((item, asyncio.ensure_future(await outlet.send(**record))))
        except Exception as exc:  # refused before it was queued: wait for those that were
            failure = failure or exc
            noted[id(item)] = exc
            if not refused_by_kafka(exc):  # Kafka away: ask no more of it
                break
    waiting = {delivery for _, delivery in asked}
    while waiting and not stopping():
        _, waiting = await asyncio.wait(waiting, timeout=STOP_CHECK_S)
    for item, delivery in asked:
        if not delivery.done():
            continue
        if delivery.cancelled():
            failure = failure or asyncio.CancelledError()
        elif (failed := delivery.exception()) is not None:
            failure = failure or failed
            noted[id(item)] = failed
        else:
            delivered[id(item)] = item  # kept: its id stays its own while the batch lasts
    if failure is not None:
        raise failure
    if waiting:
        raise TimeoutError(f"the worker stops while Kafka has not taken {len(waiting)} of "
                           "the batch's records")  # fmt: skip


async def _send_reduced(
    refused: list[tuple[FailedRecord, str]],
    outlet: Any,
    delivered: dict[int, object],
    observer: PipelineObserver,
    stopping: Callable[[], bool] = _never,
) -> int:
    """Send again, reduced (:mod:`agents.reduced_letters`), each letter the dead-letter
    topic refused whole (with the name of Kafka's answer): with the start of its record's
    value, then with none. Returns how many it refused in every form: each is logged
    (where its record was read and why it was set aside, not whose it is), counted and
    given up, so that neither the batch nor any partition the worker reads waits on a
    letter that can never be written. Raises when Kafka is away (the batch waits)."""
    left = refused
    for keep in REDUCED_KEEPS:
        failures: dict[int, BaseException] = {}
        forms: list[tuple[object, Any, dict[str, Any]]] = []
        for failed, refusal in left:
            key, value, headers = reduced_letter(failed.record, failed.error, refusal, keep)
            forms.append((failed, outlet, {"key": key, "value": value, "headers": headers}))
        away: BaseException | None = None
        try:
            await _send_once(forms, delivered, stopping, failures)
        except Exception as exc:
            away = next((failures.get(id(f), exc) for f, _ in left if id(f) not in delivered
                         and not refused_by_kafka(failures.get(id(f)))), None)  # fmt: skip
        for failed, _ in left:
            if id(failed) in delivered:
                report(observer.letter_refused, "reduced")
        left = [(failed, refusal) for failed, refusal in left if id(failed) not in delivered]
        if away is not None:
            raise away
        if not left:
            return 0
    for failed, refusal in left:
        record = failed.record
        log.error("a dead letter Kafka refused whole and reduced (%s) is not written: its "
                  "record, set aside as '%s', is %s[%d] at offset %d (%d bytes)", refusal,
                  failed.error.partition(":")[0], record.topic, record.partition,
                  record.offset, len(record.value or b""))  # fmt: skip
        delivered[id(failed)] = failed  # done with: never sent again
        report(observer.letter_refused, "dropped")
    return len(left)


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
) -> Any:
    """Register the agent on a Faust ``app``; topics are Faust topics of raw bytes.
    ``models_ready`` is awaited once, before the first batch is handled: until then the
    process may still hold the empty models it started with (it returns when the first
    load of the published snapshots has been tried, or has taken too long).
    ``stopping``: whether the worker is told to stop; ``sleep``: waits between attempts,
    and may end early when the worker stops (Faust's ``app.sleep``); ``partition_of``: the
    partition Kafka's default partitioner gives a key (a record elsewhere is counted as
    misrouted)."""

    async def emit(result: BatchResult) -> None:
        await handler.without_erased(result)  # erased meanwhile: nothing more about them
        refused = await handler.reserve(result)  # their budgets and contacts, within limits
        if refused.contacts:
            report(observer.contacts_refused, refused.contacts)
        if refused.budgets:
            report(observer.budgets_refused, refused.budgets)

        def to_customer(item: NextBestOffer | Intervention) -> dict[str, Any]:
            return {"key": item.customer_id.encode(), "value": encode_decision(item)}

        def lettered(failed: FailedRecord) -> dict[str, Any]:
            key, value, headers = letter(failed.record, failed.error)
            return {"key": key, "value": value, "headers": headers}

        outputs: list[tuple[object, Any, dict[str, Any]]] = [  # what, where, its record
            *((d, outlets.decisions, to_customer(d)) for d in result.decisions),
            *((a, outlets.interventions, to_customer(a)) for a in result.interventions),
            *((e, outlets.risk_examples, {"key": None, "value": encode_risk_example(e)})
              for e in result.risk_examples),
            *((a, outlets.held_out, to_customer(a)) for a in result.held_out),
            *((f, outlets.dead_letters, lettered(f)) for f in result.dead_letters),
        ]  # fmt: skip
        failures: dict[int, BaseException] = {}
        try:
            await _send_once(outputs, result.delivered, stopping, failures)
        except Exception as exc:  # letters refused for good go again reduced, or are dropped
            whole = [(f, refusal) for f in result.dead_letters if id(f) not in result.delivered
                     and (refusal := refusal_of(failures.get(id(f)))) is not None]  # fmt: skip
            if not whole:
                raise
            result.letters_dropped += await _send_reduced(
                whole, outlets.dead_letters, result.delivered, observer, stopping
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
        async for events in stream.take_events(batch_size, within=batch_within):
            if waiting is not None:  # once: the first batch may come before the models
                await waiting()
                waiting = None
            taken_ms = int(time.time() * 1000)  # before any attempt to apply them
            records = [source_record(e.message, taken_ms, partition_of) for e in events]
            if not await see_through(records):
                hold(events, app.consumer.unacked)  # the worker stops: they are not done

    return touchpoints
