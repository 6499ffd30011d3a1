"""Sending a batch's records to Kafka and waiting until it has them, and what becomes of
a dead letter the dead-letter topic refuses for good: it goes again reduced
(:mod:`agents.reduced_letters`), or is logged, counted and given up, so that nothing
waits for ever on a letter that can never be written. The touchpoint agent's batches and
the offer learner's letters both go this way (the thin shell around Kafka's sends)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from agents.batch_result import FailedRecord
from agents.batch_retries import refusal_of, refused_by_kafka, report
from agents.letters import letter
from agents.reduced_letters import REDUCED_KEEPS, reduced_letter

log = logging.getLogger(__name__)

# sends one record (key, value, headers...); the awaited call gives the delivery to wait
# for (a Faust topic's ``send``)
Send = Callable[..., Awaitable[Awaitable[Any]]]


class LetterObserver(Protocol):
    """Where what became of a refused letter is reported (metrics live in ``streams``)."""

    def letter_refused(self, outcome: str) -> None: ...


def _never() -> bool:
    return False


STOP_CHECK_S = 0.5  # how often a wait for Kafka's deliveries looks whether to stop


async def send_once(
    outputs: list[tuple[object, Send, dict[str, Any]]],
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
    for item, send, record in outputs:
        if id(item) in delivered:
            continue
        try:
            asked.append((item, asyncio.ensure_future(await send(**record))))
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


async def send_reduced(
    refused: list[tuple[FailedRecord, str]],
    send: Send,
    delivered: dict[int, object],
    observer: LetterObserver,
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
        forms: list[tuple[object, Send, dict[str, Any]]] = []
        for failed, refusal in left:
            key, value, headers = reduced_letter(failed.record, failed.error, refusal, keep)
            forms.append((failed, send, {"key": key, "value": value, "headers": headers}))
        away: BaseException | None = None
        try:
            await send_once(forms, delivered, stopping, failures)
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


def refused_whole(
    letters: Sequence[FailedRecord],
    delivered: dict[int, object],
    failures: dict[int, BaseException],
) -> list[tuple[FailedRecord, str]]:
    """The ``letters`` Kafka has not taken whose own failure says it refused them for good,
    each with the name of its answer (:func:`agents.batch_retries.refusal_of`)."""
    return [(f, refusal) for f in letters if id(f) not in delivered
            and (refusal := refusal_of(failures.get(id(f)))) is not None]  # fmt: skip


def whole_letter(failed: FailedRecord) -> dict[str, Any]:
    """The record (key, value, headers) of ``failed``'s letter, as :func:`send_once`
    sends it."""
    key, value, headers = letter(failed.record, failed.error)
    return {"key": key, "value": value, "headers": headers}


async def send_letters(
    letters: Sequence[FailedRecord],
    send: Send,
    observer: LetterObserver,
    stopping: Callable[[], bool] = _never,
    delivered: dict[int, object] | None = None,
) -> int:
    """Send ``letters`` whole and wait until Kafka has them; those it refuses for good go
    again reduced, or are given up (:func:`send_reduced`). Returns how many were given
    up; raises any other failure (Kafka away), once the refused ones are dealt with.
    ``delivered``: where each letter written or given up is noted, by identity, also
    when it raises (:class:`agents.sent_letters.SentLetters` keeps them for a retry)."""
    delivered = {} if delivered is None else delivered
    failures: dict[int, BaseException] = {}
    try:
        await send_once([(f, send, whole_letter(f)) for f in letters], delivered, stopping,
                        failures)  # fmt: skip
    except Exception as exc:
        whole = refused_whole(letters, delivered, failures)
        if not whole:
            raise
        dropped = await send_reduced(whole, send, delivered, observer, stopping)
        left = [failures.get(id(f)) for f in letters if id(f) not in delivered]
        if left:
            raise next((e for e in left if e is not None), exc)  # noqa: B904
        return dropped
    return 0
