"""``moments dead-letters``: what the dead-letter topics hold, and sending letters back.

Reads ``touchpoints-dlq`` and ``offer-outcomes-dlq`` to their end as of now. Without
``--redrive`` it only reports (that report, with the same filters, shows what a re-drive
would take). With it, each matching letter's original record goes back to its source
topic unchanged, with a ``redriven-from`` header naming the letter (and
``first-dead-lettered``, when its record was first set aside: the dedupe horizon counts
from then), once the producer's fault or the bug that rejected it is fixed, and a record
of it goes to ``dead-letter-redrives`` once it is delivered. A later run reads those
records first and does not send the same letter again (``--again`` does), while a record
that failed again is a new letter, which it sends (if its record was first dead-lettered
within the horizon). Moments applies each event and learns each outcome once, so
sending one twice changes nothing. Letters of customers erased since are never sent
back: that would write their data anew. ``customer-erasures`` is read first, and caught
up to its end again before each batch is sent back; with ``--redrive`` the tombstones of
the batch's customers are read from Redis too (an erasure whose record Kafka has not yet
taken). An erasure made while a batch is being sent (after those reads) is not seen by
it: the worker refuses that record, but it is on the source topic.

A re-drive stopped part way (Ctrl-C, SIGTERM) waits a few seconds for the records of
the batch under way that the producer had already taken, records those delivered, says
how many letters went back, and exits 130: the same command again sends the rest,
none twice. One killed outright (SIGKILL) may send back again the letters of the batch
it was sending. Kafka that takes no record back for :data:`DELIVERY_S` (a broker that
stopped answering) fails it as Kafka's trouble (exit 3), as a read that stalls does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import KafkaError

from feature_store import FeatureStore, StoreUnavailable
from schemas import InvalidEvent, decode_erasure, decode_redrive, encode_redrive
from streams.dead_letters import DeadLetter, DeadLetterSummary, LetterFilter
from streams.erasure_follower import ErasureFollower
from streams.kafka_security import client_options
from streams.redrive_plan import RedrivePlan
from streams.settings import Settings
from streams.topic_replay import STALL_S, first_offsets, replay
from streams.topics import (
    CUSTOMER_ERASURES,
    DEAD_LETTER_REDRIVES,
    OFFER_OUTCOMES,
    OFFER_OUTCOMES_DLQ,
    TOUCHPOINTS,
    TOUCHPOINTS_DLQ,
)

log = logging.getLogger(__name__)

SOURCES = {TOUCHPOINTS_DLQ: TOUCHPOINTS, OFFER_OUTCOMES_DLQ: OFFER_OUTCOMES}
SAFETY_MS = 3_600_000  # re-drive only letters an hour inside the dedupe horizon
BATCH = 500
DELIVERY_S = STALL_S  # a batch's records not all delivered by then: Kafka's trouble
STOPPING_S = 5.0  # stopped: how long the records the producer took may still arrive


class RedriveRefused(Exception):
    """Letters cannot be sent back safely (the erasures cannot be read)."""


class DeliveryStalled(KafkaError):  # type: ignore[misc]  # aiokafka's errors are untyped
    """Kafka took no more of a batch's letters back for a while (a broker that stopped
    answering): Kafka's trouble, so the command says to run it again once it answers."""

    def __init__(self, waited_s: float) -> None:
        super().__init__(f"the letters sent back were not all delivered within {waited_s:g} s")


class RedriveHeld(Exception):
    """A service the re-drive needs does not answer now (Redis): run it again later."""


VERDICTS = (
    "redriven", "repeated", "too_old", "unknown_source", "unknown_origin", "erased",
    "sent_before", "truncated",
)  # fmt: skip


def letter_of(record: ConsumerRecord) -> DeadLetter:
    headers = record.headers or ()
    return DeadLetter.of(
        record.topic, record.partition, record.offset, record.timestamp,
        record.key, record.value, headers,
    )  # fmt: skip


async def send_back(
    producer: AIOKafkaProducer, letter: DeadLetter, first_lettered_ms: int | None
) -> Awaitable[Any]:
    """The original record to its source topic; returns its delivery."""
    delivery: Awaitable[Any] = await producer.send(
        letter.source_topic, letter.value, key=letter.key,
        headers=letter.redrive_headers(first_lettered_ms),
    )  # fmt: skip
    return delivery


async def record_sent(producer: AIOKafkaProducer, topic: str, letters: list[DeadLetter]) -> None:
    """Record on ``topic`` that ``letters`` went back (after their records were delivered)."""
    now = datetime.now(UTC)
    deliveries = []
    for letter in letters:
        sent = letter.redriven_at(now)
        deliveries.append(
            await producer.send(topic, encode_redrive(sent), key=sent.letter.encode())
        )
    await asyncio.gather(*deliveries)


async def inspect(
    settings: Settings,
    wanted: LetterFilter,
    redrive: bool = False,
    again: bool = False,
    accept_lost_erasures: bool = False,
) -> dict[str, Any]:
    """Summarise the matching letters; with ``redrive``, send them back as well (those an
    earlier run sent too with ``again``). A re-drive is refused when retention deleted
    erasure records (who was erased then is unknown), unless ``accept_lost_erasures``."""
    summary = DeadLetterSummary()
    horizon_ms = settings.dedupe_horizon_days * 86_400_000
    erased: set[str] = set()
    plan = RedrivePlan(
        frozenset(settings.topic(t) for t in SOURCES.values()),
        remembered_from_ms=int(time.time() * 1000) - horizon_ms + SAFETY_MS,
        erased=erased,
        again=again,
    )
    ledger = settings.topic(DEAD_LETTER_REDRIVES)

    async def sent_before(records: list[ConsumerRecord]) -> None:
        for record in records:
            try:
                plan.remember(decode_redrive(record.value or b""))
            except InvalidEvent as exc:  # only Moments writes this topic
                raise RedriveRefused(
                    f"{record.topic}[{record.partition}] offset {record.offset} is not a "
                    f"re-drive record ({exc}): what was sent back before is unknown"
                ) from exc

    await replay(settings, ledger, sent_before, BATCH)

    async def erasures(records: list[ConsumerRecord]) -> None:
        for record in records:
            try:
                erased.add(decode_erasure(record.value or b"").customer_id)
            except InvalidEvent as exc:  # only Moments writes this topic
                raise RedriveRefused(
                    f"{record.topic}[{record.partition}] offset {record.offset} is not an "
                    f"erasure record ({exc}): who was erased is unknown, nothing was sent"
                ) from exc

    erasures_topic = settings.topic(CUSTOMER_ERASURES)
    lost = {p: o for p, o in (await first_offsets(settings, erasures_topic)).items() if o}
    if lost and redrive and not accept_lost_erasures:
        where = ", ".join(f"partition {p} from offset {o}" for p, o in sorted(lost.items()))
        raise RedriveRefused(
            f"{erasures_topic} lost records to retention ({where}): letters of customers "
            "erased then could be sent back; nothing was sent. Keep the topic for good (as "
            "Moments creates it), or pass --accept-lost-erasures"
        )
    # read for a dry run too, so that it reports what a re-drive would take; followed
    # to its end again before each batch
    follower = ErasureFollower(settings, erasures_topic, erasures, BATCH)
    producer = None
    store: FeatureStore | None = None
    confirmed = 0  # letters sent back, and their sending recorded

    async def screen(letters: list[DeadLetter]) -> None:
        """Learn who was erased since: the erasure records written meanwhile, and (a
        re-drive) the tombstones of the customers ``letters`` name."""
        await follower.catch_up()
        if store is None or not (named := plan.erased_unknown(letters)):
            return
        try:
            found = await store.erased(named)
        except StoreUnavailable as exc:
            raise RedriveHeld(
                f"Redis cannot say whether the customers of the next letters were erased "
                f"({exc}); they were not sent. {confirmed} letters were sent back before: "
                "the same command again sends the rest"
            ) from exc
        plan.erase(c for c, gone in zip(named, found, strict=True) if gone)

    async def handle(records: list[ConsumerRecord]) -> None:
        sent: list[asyncio.Future[Any]] = []
        taken: list[DeadLetter] = []
        letters = [letter_of(record) for record in records]
        await screen([letter for letter in letters if wanted.matches(letter)])
        try:
            for letter in letters:
                plan.track(letter)
                summary.saw(letter)
                if wanted.matches(letter):
                    summary.add(letter, sent_back=plan.sent_before(letter))
                    verdict = plan.take(letter)
                    if verdict == "truncated":  # not the record: where to find it (no key)
                        log.warning("%s:%d:%d keeps only part of its record, not sent back: "
                                    "the record is %s[%d] at offset %d, while that topic "
                                    "retains it", *letter.place, *letter.origin)  # fmt: skip
                    if verdict == "redriven" and producer is not None:
                        first = plan.first_lettered(letter)
                        # (a send waits while the producer's buffer is full: a stop then
                        # leaves that letter unsent, and those taken before it are below)
                        delivery = await send_back(producer, letter, first)
                        sent.append(asyncio.ensure_future(delivery))
                        taken.append(letter)
        except asyncio.CancelledError:  # stopped while handing letters to the producer
            if producer is not None and sent:  # it delivers them as it stops: recorded
                await delivered_and_recorded(producer, sent, taken, stopped=True)
            raise
        if producer is not None and sent:  # delivered before the next batch is read
            await delivered_and_recorded(producer, sent, taken)

    async def delivered_and_recorded(
        producer: AIOKafkaProducer,
        sent: list[asyncio.Future[Any]],
        taken: list[DeadLetter],
        stopped: bool = False,
    ) -> None:
        """Wait for the batch's records (bounded), then record those delivered, stopped
        (``stopped``: already) or not: a letter that went back is recorded, so that it
        is not sent again."""
        nonlocal confirmed
        try:  # (wait, unlike gather, leaves the deliveries be when it is cancelled)
            await asyncio.wait(sent, timeout=STOPPING_S if stopped else DELIVERY_S)
        except asyncio.CancelledError:  # stopped: what the producer took may still arrive
            stopped = True
            await asyncio.wait(sent, timeout=STOPPING_S)
        went = [letter for letter, delivery in zip(taken, sent, strict=True)
                if delivery.done() and not delivery.cancelled()
                and delivery.exception() is None]  # fmt: skip
        if went:
            recording = asyncio.ensure_future(record_sent(producer, ledger, went))
            bound = STOPPING_S if stopped or late_or_stopped(sent) else DELIVERY_S
            try:
                await asyncio.wait([recording], timeout=bound)
            except asyncio.CancelledError:  # stopped while recording: it ends first
                stopped = True
                await asyncio.wait([recording], timeout=STOPPING_S)
            if recording.done() and recording.exception() is None:
                confirmed += len(went)
            else:
                recording.cancel()
                log.warning("%d letters went back but their sending could not be recorded: "
                            "the same command again sends them again", len(went))  # fmt: skip
                if not stopped:  # (the batch's own wait, if that is what ran out)
                    raise DeliveryStalled(DELIVERY_S if late_or_stopped(sent) else bound)
        if stopped:
            raise asyncio.CancelledError
        if late_or_stopped(sent):
            raise DeliveryStalled(DELIVERY_S)
        for delivery in sent:  # one Kafka refused: its trouble
            if (refused := delivery.exception()) is not None:
                raise refused

    read = 0
    try:
        await follower.start()
        await follower.catch_up()
        if redrive:
            from streams.configured import build_store

            store = build_store(settings)
            producer = AIOKafkaProducer(
                **client_options(), bootstrap_servers=settings.kafka_bootstrap,
                acks="all", enable_idempotence=True,
            )  # fmt: skip
            await producer.start()
        for dlq in SOURCES:
            read += await replay(settings, settings.topic(dlq), handle, BATCH)
    except KafkaError:
        if confirmed:  # the command exits as Kafka's trouble; this much is done
            log.warning("%d letters were sent back before Kafka stopped answering: the "
                        "same command again sends the rest", confirmed)  # fmt: skip
        raise
    except asyncio.CancelledError:  # Ctrl-C, SIGTERM
        if redrive:
            log.warning("stopped: %d letters were sent back; the same command again sends "
                        "the rest", confirmed)  # fmt: skip
        raise
    finally:
        if producer is not None:  # what it holds still is not waited for long
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STOPPING_S):
                    await producer.stop()
        if store is not None:
            await store.close()
        await follower.stop()
    report: dict[str, Any] = {"letters_read": read, "matching": summary.report()}
    verdicts = {verdict: plan.outcomes.get(verdict, 0) for verdict in VERDICTS}
    report["redrive" if redrive else "would_redrive"] = verdicts
    return report


def late_or_stopped(sent: list[asyncio.Future[Any]]) -> bool:
    """Whether some of a batch's deliveries had not arrived (the batch gave up or was
    stopped): its record then gets a short while, not the whole delivery bound."""
    return not all(delivery.done() for delivery in sent)
