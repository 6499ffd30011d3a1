"""``moments rebuild``: replay the topics into an empty Redis.

Erasures come first: every customer erased is erased again (tombstone included), so
that replaying their old touchpoints and decisions cannot bring them back; and last
again, for those erased while the rebuild ran. Touchpoints
rebuild the features, less those the live pipeline dead-lettered without applying them
(found by their source offsets in the dead-letter topic; an event whose decision failed,
or whose batch was given up after repeated failures, had been applied, and is replayed).
The emitted next-best offers and interventions (those held out too) rebuild the contact
history, the decision contexts (each kept for what is left of its lifetime, counted from
the decision) and the marks that stop a replayed event from being decided twice. A
decision record that cannot be decoded is counted and skipped. Because every update is
idempotent and bucketed by the event's own ts, the result equals what the live
pipeline built.

The churn-risk snapshots waiting for their labels are in no topic. Each customer scored
within the lapse period gets one again, taken as of the last touchpoint the live
pipeline scores: without it, a customer who never comes back would never be labelled.
(One scored longer ago may already have been labelled by the sweep, so gets none: it
would be learned twice.)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import msgspec
from aiokafka import ConsumerRecord

from agents.offer_budget import offers_spent
from agents.risk import LAPSE_DAYS, risk_features
from agents.risk_watch import pending_snapshot
from agents.touchpoint_handler import decision_record, worth_watching
from feature_store import (
    FeatureStore,
    intervention_fact,
    offers_shown_fact,
    risk_fact,
)
from feature_store.budgets import KEPT_DAYS
from feature_store.facts import DAY_MS, ts_ms
from schemas import (
    InvalidEvent,
    decode_erasure,
    decode_intervention,
    decode_next_best_offer,
    decode_touchpoint,
    load_catalogue,
)
from streams.dead_letters import DeadLetter
from streams.settings import Settings
from streams.topic_replay import first_offsets, replay
from streams.topics import (
    CUSTOMER_ERASURES,
    INTERVENTIONS,
    INTERVENTIONS_HELD_OUT,
    NEXT_BEST_OFFERS,
    TOUCHPOINTS,
    TOUCHPOINTS_DLQ,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


class RebuildError(RuntimeError):
    """The rebuild cannot go on: the target Redis is not empty (and --force was not
    given), or the erasures topic lost records to retention or holds one Moments cannot
    read."""


@dataclass(frozen=True, slots=True)
class RebuildReport:
    touchpoints: int
    skipped_invalid: int
    decisions: int
    applied: int
    seconds: float
    erasures: int = 0  # customers erased again before the replay
    risk_snapshots: int = 0  # pending churn-risk snapshots taken again
    skipped_decisions: int = 0  # next-best-offer and intervention records not decoded


async def rebuild(
    settings: Settings,
    store: FeatureStore,
    force: bool = False,
    batch: int = 500,
    accept_lost_erasures: bool = False,
) -> RebuildReport:
    if not force and await store.has_any_customer():
        raise RebuildError("the target Redis already holds Moments keys; use --force to merge")
    erasures_topic = settings.topic(CUSTOMER_ERASURES)
    lost = {p: o for p, o in (await first_offsets(settings, erasures_topic)).items() if o}
    if lost:
        where = ", ".join(f"partition {p} from offset {o}" for p, o in sorted(lost.items()))
        said = (f"{erasures_topic} no longer holds its oldest records ({where}): customers "
                "erased then could come back with their touchpoints")  # fmt: skip
        if not accept_lost_erasures:
            raise RebuildError(
                f"{said}. Keep the topic for good (retention.ms=-1 and retention.bytes=-1, "
                "as Moments creates it), or pass --accept-lost-erasures"
            )
        log.warning("%s; rebuilding all the same (--accept-lost-erasures)", said)
    started = time.monotonic()
    invalid = 0
    applied = 0
    limits = load_catalogue(settings.catalogue_path).daily_limits()
    budgets_since = datetime.now(UTC).date() - timedelta(days=KEPT_DAYS - 1)

    # What the live pipeline dead-lettered without applying it (by source partition and
    # offset) stays out; an event whose decision failed had been applied, and is again.
    # So had those of a batch given up, but for one dated too far ahead when it was read.
    source = settings.topic(TOUCHPOINTS)
    rejected: set[tuple[int, int]] = set()
    given_up: dict[tuple[int, int], int] = {}  # when its letter was written (ms)
    skew_ms = settings.max_future_skew_s * 1000

    async def dead_letters(records: list[ConsumerRecord]) -> None:
        for record in records:
            letter = DeadLetter.of(record.topic, record.partition, record.offset,
                                   record.timestamp, record.key, record.value,
                                   record.headers or ())  # fmt: skip
            if letter.source_topic != source:
                continue
            where = (letter.source_partition, letter.source_offset)
            if not letter.applied_live:
                rejected.add(where)
            elif letter.given_up:
                given_up[where] = letter.written_ms

    last_seen: dict[str, int] = {}  # customer -> newest touchpoint scored for risk (ms)

    async def touchpoints(records: list[ConsumerRecord]) -> None:
        nonlocal invalid, applied
        events = []
        for record in records:
            where = (record.partition, record.offset)
            if where in rejected:
                invalid += 1
                continue
            try:
                event = decode_touchpoint(record.value or b"")
            except InvalidEvent:
                invalid += 1  # written before the dead-letter topic existed
                continue
            if where in given_up and ts_ms(event.ts) > given_up[where] + skew_ms:
                invalid += 1  # refused as dated ahead, before its batch was given up
                continue
            events.append(event)
        statuses = await store.apply(events)
        applied += sum(int(s) == 1 for s in statuses)
        for event, status in zip(events, statuses, strict=True):
            if int(status) == 1 and worth_watching(event):  # as the live pipeline does
                at = ts_ms(event.ts)
                last_seen[event.customer_id] = max(last_seen.get(event.customer_id, at), at)

    skipped_decisions = 0

    def decoded(records: list[ConsumerRecord], decode: Callable[[bytes], T]) -> list[T]:
        """The records that decode; the others are counted and skipped."""
        nonlocal skipped_decisions
        found = []
        for record in records:
            try:
                found.append(decode(record.value or b""))
            except msgspec.DecodeError:  # malformed, or of the wrong shape
                skipped_decisions += 1
        return found

    async def decisions(records: list[ConsumerRecord]) -> None:
        # a fallback answer is published only: live, it records no context, no contact
        # and no budget spending, so neither does the rebuild
        found = [d for d in decoded(records, decode_next_best_offer) if not d.fallback]
        contacts = [
            offers_shown_fact(
                d.decision_id, d.customer_id, d.channel, [o.offer_id for o in d.offers], d.ts
            )
            for d in found
            if d.offers
        ]
        await store.apply_facts(contacts)
        await store.decisions.record([decision_record(d) for d in found])
        spent = offers_spent(found, limits)  # the daily offer budgets still kept
        await store.budgets.add([s for s in spent if s.day >= budgets_since])

    erased: set[str] = set()

    async def erasures(records: list[ConsumerRecord]) -> None:
        for record in records:
            try:
                customer_id = decode_erasure(record.value or b"").customer_id
            except InvalidEvent as exc:  # only Moments writes this topic
                raise RebuildError(
                    f"{record.topic}[{record.partition}] offset {record.offset} is not an "
                    f"erasure record ({exc}); nothing was replayed after it"
                ) from exc
            if customer_id not in erased:
                await store.erase(customer_id)
                erased.add(customer_id)

    await replay(settings, erasures_topic, erasures, batch)
    await replay(settings, settings.topic(TOUCHPOINTS_DLQ), dead_letters, batch)

    async def interventions(records: list[ConsumerRecord]) -> None:
        found = decoded(records, decode_intervention)
        await store.apply_facts([
            intervention_fact(i.intervention_id, i.customer_id, i.kind, i.ts, held_out=i.control)
            for i in found
        ])  # fmt: skip
        await store.decisions.record([decision_record(i) for i in found])

    total = await replay(settings, source, touchpoints, batch)
    decided_alerts = await replay(settings, settings.topic(INTERVENTIONS), interventions, batch)
    held = settings.topic(INTERVENTIONS_HELD_OUT)
    decided_alerts += await replay(settings, held, interventions, batch)
    decided = await replay(settings, settings.topic(NEXT_BEST_OFFERS), decisions, batch)
    # Erasures made while the rebuild ran (the live API keeps erasing): erased again now,
    # whatever the replay put back of them.
    await replay(settings, erasures_topic, erasures, batch)
    snapshots = await _retake_risk_snapshots(store, last_seen, batch)
    report = RebuildReport(
        total, invalid, decided + decided_alerts, applied, time.monotonic() - started,
        erasures=len(erased), risk_snapshots=snapshots, skipped_decisions=skipped_decisions,
    )  # fmt: skip
    if skipped_decisions:
        log.warning("skipped %d decision records that could not be decoded", skipped_decisions)
    log.info("rebuilt from %d touchpoints and %d decisions", total, decided)
    return report


async def _retake_risk_snapshots(store: FeatureStore, last_seen: dict[str, int], batch: int) -> int:
    """A pending churn-risk snapshot, as of their last touchpoint, for every customer seen
    within the lapse period; returns how many were taken."""
    since = int(time.time() * 1000) - LAPSE_DAYS * DAY_MS
    recent = [(c, at) for c, at in last_seen.items() if at > since]
    taken = 0
    for i in range(0, len(recent), batch):
        chunk = recent[i : i + batch]
        # one read each, as of its own moment; concurrent reads share round trips
        views = await asyncio.gather(*(store.read(c, now=at / 1000) for c, at in chunk))
        facts = []
        for (customer, at), features in zip(chunk, views, strict=True):
            if features is None:  # erased meanwhile
                continue
            when = datetime.fromtimestamp(at / 1000, UTC)
            snapshot = pending_snapshot(risk_features(features, when), at)
            facts.append(risk_fact(f"rebuild:{at}", customer, when, snapshot, None))
        statuses = await store.apply_facts(facts)
        taken += sum(int(s) == 1 for s in statuses)
    return taken
