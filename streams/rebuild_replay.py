"""One ``moments rebuild``'s replay of the topics (:mod:`streams.rebuild`), record by
record: what of each goes to the target Redis, what is held out, and what became of them
all, counted for the report."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import msgspec
from aiokafka import ConsumerRecord
from redis.exceptions import ResponseError

from agents.decision_plan import worth_watching
from agents.decision_records import decision_record, offers_shown
from agents.letters import first_lettered, redriven_from
from agents.offer_budget import budget_day, budget_spending
from agents.received import received_ms
from agents.withdrawals_undated import withdrawal_received
from feature_store import (
    ApplyStatus,
    Fact,
    FeatureStore,
    card_call_facts,
    intervention_fact,
    touchpoint_fact,
)
from feature_store.budgets import KEPT_DAYS
from feature_store.facts import DAY_MS, WITHDRAWAL_FIELDS, ts_ms
from feature_store.records import DecisionRecord
from schemas import (
    CustomerErasure,
    InvalidEvent,
    TouchpointEvent,
    decode_erasure,
    decode_intervention,
    decode_next_best_offer,
    decode_outcome,
    decode_touchpoint,
    load_catalogue,
)
from streams.dead_letters import DeadLetter
from streams.letter_identity import Held
from streams.rebuild_acceptances import AcceptanceJoin, keep_again
from streams.rebuild_report import STATUS_PART, RebuildError, RebuildReport
from streams.rebuild_risk import RiskView, due_before, risk_views, run_end
from streams.rebuild_withdrawals import appended_ms, withdrawals_again
from streams.settings import Settings
from streams.topic_replay import first_offsets, replay
from streams.topics import (
    CUSTOMER_ERASURES,
    INTERVENTIONS,
    INTERVENTIONS_HELD_OUT,
    NEXT_BEST_OFFERS,
    OFFER_OUTCOMES,
    TOUCHPOINTS,
    TOUCHPOINTS_DLQ,
)

log = logging.getLogger("streams.rebuild")  # the command's lines, all under one name
T = TypeVar("T")


# what an event's apply says when the customer's risk is watched on it: applied now, or
# by an earlier run (not erased, nor dated the TTL or longer ago)
WATCHED = frozenset({ApplyStatus.APPLIED, ApplyStatus.DUPLICATE, ApplyStatus.DUPLICATE_DECIDED,
                     ApplyStatus.DUPLICATE_RECORDED})  # fmt: skip


class Replay:
    """One rebuild's replay of the topics, and what it counted on the way."""

    def __init__(self, settings: Settings, store: FeatureStore, batch: int) -> None:
        self.settings, self.store, self.batch = settings, store, batch
        self.erasures_topic = settings.topic(CUSTOMER_ERASURES)
        self.started = time.monotonic()
        self.invalid = 0
        self.parts: Counter[str] = Counter()  # touchpoints by what became of them
        self.failed: set[str] = set()  # customers whose keys failed a write (see report)
        self.catalogue = load_catalogue(settings.catalogue_path)
        today = budget_day(datetime.now(UTC), self.catalogue.contact_policy.timezone)
        self.budgets_since = today - timedelta(days=KEPT_DAYS - 1)

        # What the live pipeline dead-lettered without applying it stays out; an event
        # whose decision failed had been applied, and is again. So had those of a batch
        # given up, but for one dated too far ahead when it was read. A record is found by
        # where it was read (source partition and offset) and what its letter holds of it:
        # a letter naming a place Kafka gave again since (a partition that lost its tail, a
        # topic made again) does not hold out the record written there since. Every letter
        # naming a place counts (an old one and one of the record there now may both).
        self.source = settings.topic(TOUCHPOINTS)
        self.rejected: dict[tuple[int, int], set[Held]] = {}
        # when the worker took the record of each letter (ms)
        self.given_up: dict[tuple[int, int], dict[Held, int]] = {}
        self.skew_ms = settings.max_future_skew_s * 1000

        self.last_seen: dict[str, int] = {}  # customer -> newest touchpoint scored for risk (ms)
        # customer -> their risk figures as of it, read before a later fact cut its windows
        self.taken: dict[str, RiskView] = {}
        self.skipped_lapsed = 0
        self.skipped_decisions = 0
        self.accepted = AcceptanceJoin()  # the accepted outcomes, joined to their decisions
        self.outcomes = self.skipped_outcomes = self.acceptances = 0

        # customer -> when the block of their newest erasure ends (ms): still blocked, or
        # run out (then what is dated before it, erased or refused live, is not replayed)
        self.erased: dict[str, int] = {}
        self.lapsed: dict[str, int] = {}
        self.block_ms = settings.tombstone_days * DAY_MS
        # customer blocked -> when first erased (ms, as their tombstone says), and their
        # touchpoints held out that withdraw or grant (each with when it was sent, ms)
        self.first_erased: dict[str, int] = {}
        self.held_out: dict[str, list[tuple[Fact, int]]] = {}

        self.replayed = False  # the erasures are read again once everything else was
        self.letters_lost = False
        self.total = 0  # touchpoints read
        self.decided = 0  # next-best offers read
        self.decided_alerts = 0  # interventions read, held out or not

    async def erase_again(self) -> None:
        """Erase again every customer erased, for what is left of their block."""
        await replay(self.settings, self.erasures_topic, self._erasures, self.batch)

    async def read_dead_letters(self) -> None:
        """Learn which touchpoints the live pipeline dead-lettered, to hold them out."""
        letters_topic = self.settings.topic(TOUCHPOINTS_DLQ)
        self.letters_lost = any((await first_offsets(self.settings, letters_topic)).values())
        if self.letters_lost:
            log.warning("%s no longer holds its oldest letters: touchpoints the live pipeline "
                        "refused then for another reason than their form are applied",
                        letters_topic)  # fmt: skip
        await replay(self.settings, letters_topic, self._dead_letters, self.batch)

    async def replay_touchpoints(self) -> None:
        """Rebuild the features from the touchpoints not held out."""
        self.total = await replay(self.settings, self.source, self._touchpoints, self.batch)

    async def keep_withdrawals_of_the_erased(self) -> None:
        """Apply again the withdrawals held out of customers blocked, as the live worker
        applied them after the erasure (see :mod:`streams.rebuild_withdrawals`)."""
        facts = [fact for customer_id, held in self.held_out.items()
                 for fact in withdrawals_again(held, self.first_erased[customer_id])]  # fmt: skip
        for start in range(0, len(facts), self.batch):
            await each_own(self.failed, facts[start : start + self.batch], self.store.apply_facts)

    async def replay_decisions(self) -> None:
        """Rebuild the contacts, decision contexts and budgets from the decisions emitted."""
        settings = self.settings
        self.decided_alerts = await replay(
            settings, settings.topic(INTERVENTIONS), self._interventions, self.batch
        )
        held = settings.topic(INTERVENTIONS_HELD_OUT)
        self.decided_alerts += await replay(settings, held, self._interventions, self.batch)
        # the accepted outcomes first, few, to wait for their decisions: not every decision
        # in memory (see streams.rebuild_acceptances)
        outcomes = settings.topic(OFFER_OUTCOMES)
        self.outcomes = await replay(settings, outcomes, self._outcomes, self.batch)
        self.decided = await replay(
            settings, settings.topic(NEXT_BEST_OFFERS), self._next_best_offers, self.batch
        )

    async def keep_acceptances(self) -> None:
        """Keep again the offers accepted, joined to their decisions, as live."""
        kept = self.accepted.kept(self.store.context_ttl_s * 1000)
        self.acceptances = await keep_again(self.store.acceptances, kept, self.batch, self.failed)

    async def erase_those_erased_meanwhile(self) -> None:
        """Read the erasures again once everything else was replayed."""
        # Erasures made while the rebuild ran (the live API keeps erasing): erased again now,
        # whatever the replay put back of them.
        self.replayed = True
        await self.erase_again()

    def report(self, snapshots: int, bands: int) -> RebuildReport:
        """What was rebuilt, logged too."""
        parts = self.parts
        report = RebuildReport(
            self.total, self.invalid, self.decided + self.decided_alerts, parts["applied"],
            time.monotonic() - self.started, erasures=len(self.erased),
            risk_snapshots=snapshots, skipped_decisions=self.skipped_decisions,
            risk_bands=bands, expired=parts["expired"], of_erased=parts["of_erased"],
            duplicates=parts["duplicates"], over_ceiling=parts["over_ceiling"],
            not_written=parts["not_written"],
            erasures_lapsed=len(set(self.lapsed) - set(self.erased)),
            before_lapsed_erasure=self.skipped_lapsed, dead_letters_lost=self.letters_lost,
            customers_failed=len(self.failed), outcomes=self.outcomes,
            skipped_outcomes=self.skipped_outcomes, acceptances=self.acceptances,
        )  # fmt: skip
        if self.failed:  # by count alone: no customer id in the log
            log.warning("the records of %d customers whose keys Redis could not write as "
                        "they should be (a key of another type, a count that is no number) "
                        "were skipped; mend or erase their keys, then run the rebuild again "
                        "with --force", len(self.failed))  # fmt: skip
        if self.skipped_decisions:
            log.warning(
                "skipped %d decision records that could not be decoded", self.skipped_decisions
            )
        if self.skipped_outcomes:
            log.warning("skipped %d outcome records that could not be decoded or were dated "
                        "too far ahead", self.skipped_outcomes)  # fmt: skip
        log.info("%s", report.summary())
        return report

    async def _erasures(self, records: list[ConsumerRecord]) -> None:
        for record in records:
            try:
                erasure: CustomerErasure = decode_erasure(record.value or b"")
            except InvalidEvent as exc:  # only Moments writes this topic
                where = f"{record.topic}[{record.partition}] offset {record.offset}"
                if self.replayed:  # written while the rebuild ran
                    raise RebuildError(
                        f"{where} is not an erasure record ({exc}); the topics were "
                        "replayed, but customers erased after it may be in the target "
                        "again: remove the record, then run the rebuild again with --force"
                    ) from exc
                raise RebuildError(
                    f"{where} is not an erasure record ({exc}); nothing was replayed after it"
                ) from exc
            customer_id, at = erasure.customer_id, ts_ms(erasure.ts)
            ends = at + self.block_ms
            if ends <= self.erased.get(customer_id, 0):
                continue  # blocked at least as long already
            # blocked for what is left of it, or not at all when it has run out; the
            # withdrawals it kept are kept again (a record from before them names none)
            erased = await self.store.erase(
                customer_id, erased_at_ms=at, withdrawals=erasure.withdrawals
            )
            if erased.blocked:
                self.erased[customer_id] = ends
                self.first_erased[customer_id] = erased.erased_at_ms or at
            else:
                self.lapsed[customer_id] = max(self.lapsed.get(customer_id, 0), ends)

    def _within_block(self, customer_id: str, at: datetime, sent_ms: int = 0) -> bool:
        """Dated (and, for a touchpoint, sent to Kafka: ``sent_ms``, its record's time)
        before the block of an erasure ends, or ended: erased, or refused. A touchpoint
        sent after a block ended was applied live, whatever its date: the tombstone had
        gone when the worker read it. Of a customer blocked now too, not left to their
        tombstone alone: it may run out while the rebuild runs, and their later records
        would come back."""
        ends = max(self.lapsed.get(customer_id, 0), self.erased.get(customer_id, 0))
        return max(ts_ms(at), sent_ms) < ends

    async def _dead_letters(self, records: list[ConsumerRecord]) -> None:
        for record in records:
            letter = DeadLetter.of(record.topic, record.partition, record.offset,
                                   record.timestamp, record.key, record.value,
                                   record.headers or ())  # fmt: skip
            if letter.source_topic != self.source:
                continue
            where, held = (letter.source_partition, letter.source_offset), letter.held
            if not letter.applied_live:
                self.rejected.setdefault(where, set()).add(held)
            elif letter.given_up:  # when the worker judged it (a batch retried through
                # an outage may be written much later); read more than once, the latest
                taken = self.given_up.setdefault(where, {})
                taken[held] = max(taken.get(held, letter.taken_ms), letter.taken_ms)

    async def _touchpoints(self, records: list[ConsumerRecord]) -> None:
        events = []
        undated: list[Fact] = []
        card_calls: list[Fact] = []  # counted against the call caps, as live
        now_ms = round(time.time() * 1000)
        latest_ms = now_ms + int(self.skew_ms)
        for record in records:
            where = (record.partition, record.offset)
            if any(held.matches(record.value) for held in self.rejected.get(where, ())):
                self.invalid += 1
                continue
            try:
                event = decode_touchpoint(record.value or b"")
            except InvalidEvent:
                self.invalid += 1  # written before the dead-letter topic existed
                continue
            taken = [at for held, at in self.given_up.get(where, {}).items()
                     if held.matches(record.value)]  # fmt: skip
            if taken and ts_ms(event.ts) > max(taken) + self.skew_ms:
                self.invalid += 1  # refused as dated ahead, before its batch was given up
                continue
            if ts_ms(event.ts) > time.time() * 1000 + self.skew_ms:
                # ahead still, so ahead when a worker read it: refused, though its letter
                # is not to be found (written after the letters were read, or expired)
                self.invalid += 1
                continue
            # a withdrawal dated a placeholder time counts from when it was received, as
            # the live worker read it (agents/withdrawals_undated.py, agents/received.py)
            sent = received_ms(record.timestamp, _first_lettered(record),
                               now_ms, latest_ms)  # fmt: skip
            if self._within_block(event.customer_id, event.ts, record.timestamp or 0):
                if event.customer_id not in self.erased:  # (those blocked now: refused)
                    self.skipped_lapsed += 1
                else:  # but for a withdrawal, maybe
                    self.parts["of_erased"] += 1
                    appended = appended_ms(record.timestamp, record.timestamp_type)
                    self._hold_out(event, appended)
                    # and an undated withdrawal stamped when it was sent, as live, weighed
                    # against the erasure as the others are
                    for fact in withdrawal_received(event, sent):
                        self.held_out[event.customer_id].append((fact, appended))
                continue
            events.append(event)
            undated += withdrawal_received(event, sent)
            card_calls += card_call_facts(event)
        start = 0
        while start < len(events):  # in runs: see streams.rebuild_risk
            due = due_before(events[start:], self.last_seen, self.taken)
            self.taken.update(await risk_views(self.store, due, self.failed))
            end = run_end(events, start, self.last_seen)
            self._watch(events[start:end], await each_own(self.failed, events[start:end],
                                                           self.store.apply))  # fmt: skip
            start = end
        if undated or card_calls:
            await each_own(self.failed, [*undated, *card_calls], self.store.apply_facts)

    def _watch(self, events: list[TouchpointEvent], statuses: list[ApplyStatus | None]) -> None:
        """Count what became of the touchpoints applied, and note the scored ones."""
        self.parts.update(STATUS_PART[status] for status in statuses)
        last_seen = self.last_seen
        for event, status in zip(events, statuses, strict=True):
            # as the live pipeline does; one applied already (a rebuild run again after
            # one that stopped half-way) counts too, or its risk state would be lost
            if status in WATCHED and worth_watching(event):
                at = ts_ms(event.ts)
                last_seen[event.customer_id] = max(last_seen.get(event.customer_id, at), at)
                view = self.taken.get(event.customer_id)
                if view is not None and view.at != last_seen[event.customer_id]:
                    del self.taken[event.customer_id]  # scored since: read again

    def _hold_out(self, event: TouchpointEvent, sent_ms: int) -> None:
        """Keep the touchpoint of a customer blocked if it withdraws or grants, with when
        it was appended to Kafka (0: unknown, see :func:`appended_ms`)."""
        fact = touchpoint_fact(event)
        if any(op == "latest" and field in WITHDRAWAL_FIELDS for op, field, _ in fact.updates):
            self.held_out.setdefault(event.customer_id, []).append((fact, sent_ms))

    def _decoded(self, records: list[ConsumerRecord], decode: Callable[[bytes], T]) -> list[T]:
        """The records that decode; the others are counted and skipped."""
        found = []
        for record in records:
            try:
                found.append(decode(record.value or b""))
            except msgspec.DecodeError:  # malformed, or of the wrong shape
                self.skipped_decisions += 1
        return found

    async def _outcomes(self, records: list[ConsumerRecord]) -> None:
        now_ms = int(time.time() * 1000)
        for record in records:
            sent = max(record.timestamp or 0, 0)
            try:
                outcome = decode_outcome(record.value or b"")
            except InvalidEvent:  # dead-lettered live
                self.skipped_outcomes += 1
                continue
            # dated too far ahead of when the learner read it, about when it was sent
            # (now, when Kafka does not say): dead-lettered live (schemas.ahead)
            latest = datetime.fromtimestamp(((sent or now_ms) + self.skew_ms) / 1000, UTC)
            if outcome.ts > latest:
                self.skipped_outcomes += 1
            elif not self._within_block(outcome.customer_id, outcome.ts, sent):  # (erased)
                self.accepted.wait(outcome, sent)

    async def _next_best_offers(self, records: list[ConsumerRecord]) -> None:
        decided = self._decoded(records, decode_next_best_offer)
        found = [d for d in decided if not self._within_block(d.customer_id, d.ts)]
        for decision in found:
            self.accepted.join(decision)
        await self._record(offers_shown(found), [decision_record(d) for d in found])
        # what was decided spent the day's budgets live, its customer erased since or not
        # (a fallback answer spends none: default offers have no daily limit)
        spent = budget_spending((d for d in decided if not d.fallback), self.catalogue)
        await self.store.budgets.add([s for s in spent if s.day >= self.budgets_since])

    async def _interventions(self, records: list[ConsumerRecord]) -> None:
        found = [i for i in self._decoded(records, decode_intervention)
                 if not self._within_block(i.customer_id, i.ts)]  # fmt: skip
        await self._record([
            intervention_fact(i.intervention_id, i.customer_id, i.kind, i.ts,
                              held_out=i.control, priority=i.priority, reasons=i.reasons)
            for i in found
        ], [decision_record(i) for i in found])  # fmt: skip

    async def _record(self, facts: list[Fact], records: list[DecisionRecord]) -> None:
        """Apply the contacts ``facts`` and record the decisions ``records``, each
        customer's keys failing for themselves alone (see :func:`each_own`)."""
        await each_own(self.failed, facts, self.store.apply_facts)
        faults: dict[str, Exception] = {}
        await self.store.decisions.record(records, faults=faults)
        self.failed.update(faults)


async def each_own(
    failed: set[str], items: Sequence[T], apply: Callable[..., Awaitable[list[ApplyStatus]]]
) -> list[ApplyStatus | None]:
    """``apply`` (the store's ``apply`` or ``apply_facts``) to ``items``, in one round
    trip; an item whose customer's keys Redis cannot serve as they should be (a key of
    another type, a count that is no number) is not applied (None), and its customer is
    added to ``failed``, rather than stop the rebuild: live, the worker dead-letters it.
    Redis unavailable still raises (:class:`StoreUnavailable`)."""
    ran: dict[int, ApplyStatus] = {}
    try:
        return list(await apply(items, ran))
    except ResponseError:  # (one that says Redis cannot serve now is StoreUnavailable)
        statuses: list[ApplyStatus | None] = [ran.get(i) for i in range(len(items))]
        failed.update(getattr(item, "customer_id", "") for item, status
                      in zip(items, statuses, strict=True) if status is None)  # fmt: skip
        return statuses


def _first_lettered(record: ConsumerRecord) -> bytes | None:
    """The ``first-dead-lettered`` header of a record sent back from the dead letters.

    >>> from types import SimpleNamespace as Record
    >>> back = [("redriven-from", b"touchpoints-dlq:0:7"), ("first-dead-lettered", b"17")]
    >>> _first_lettered(Record(headers=back)), _first_lettered(Record(headers=back[1:]))
    (b'17', None)
    """
    headers = getattr(record, "headers", None) or ()  # (a record read without any)
    return first_lettered(headers) if redriven_from(headers) else None
