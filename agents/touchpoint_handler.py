"""Handle a batch of raw touchpoint records: decode, update features, decide.

Framework-free: the Faust agent hands in :class:`SourceRecord`s and sends what comes
back. Nothing is dropped silently: a record that cannot be decoded, or whose handling
keeps failing, comes back as a :class:`agents.batch_result.FailedRecord` with the
reason. Deciding on the applied touchpoints is :mod:`agents.touchpoint_decisions`; once
the batch's decisions are delivered, :meth:`TouchpointHandler.confirm` records them.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from agents.batch_result import (
    BatchMemory,
    BatchResult,
    EventKey,
    FailedRecord,
    event_key,
    failure_reason,
    fault_kinds,
)
from agents.batch_retries import outage
from agents.control_group import ControlGroup
from agents.decision_reads import read_for_decisions
from agents.decision_records import decision_record, offers_shown
from agents.interventions import InterventionRules
from agents.letters import SourceRecord
from agents.offer_policy import OfferPolicy
from agents.received import received_ms
from agents.reserved_contacts import ContactReservations, Refusals
from agents.risk_watch import RiskHolder
from agents.touchpoint_decisions import TouchpointDecisions
from agents.withdrawal_stops import call_stop
from agents.withdrawals_ahead import withdrawal_now
from agents.withdrawals_undated import withdrawal_received
from feature_store import (
    ApplyStatus,
    FeatureStore,
    RecentTouchpoint,
    RepliesUnknown,
    StoreUnavailable,
    card_call_facts,
    intervention_fact,
)
from feature_store.facts import Fact, ts_ms
from schemas import Intervention, InvalidEvent, NextBestOffer, TouchpointEvent, decode_touchpoint
from schemas.ahead import not_ahead
from schemas.errors import record_value

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class TouchpointHandler:
    """Turns raw records into feature updates, decisions and dead letters."""

    def __init__(
        self,
        store: FeatureStore,
        policy: OfferPolicy,
        max_attempts: int = 3,
        clock: Callable[[], datetime] = _utcnow,
        max_future: timedelta = timedelta(minutes=15),
        rules: InterventionRules | None = None,
        risk: RiskHolder | None = None,
        risk_threshold: float = 0.7,
        holdout: ControlGroup | None = None,
        offer_max_age_s: float = 0.0,  # 0: a moment is decided however old its touchpoint
    ) -> None:
        self._store = store
        self._max_attempts = max_attempts
        self._clock = clock
        self._max_future = max_future
        self._reservations = ContactReservations(store, policy)
        self._decisions = TouchpointDecisions(
            store.pseudonym,
            policy,
            clock,
            max_attempts,
            rules or InterventionRules(),
            risk or RiskHolder(),
            risk_threshold,
            holdout or ControlGroup("", 0.0),  # the interventions' hold-out
            offer_max_age_s,
        )

    async def handle(
        self, records: Sequence[SourceRecord], applied: Counter[EventKey] | None = None
    ) -> BatchResult:
        """Handle a batch. Raises :class:`StoreUnavailable` only; retry the batch then,
        with the same ``applied``: the events (by customer and event id) this batch's
        earlier attempts applied (this one adds its own), which count as applied, not as
        duplicates."""
        earlier = Counter(applied or ())
        result = BatchResult()
        decoded: list[tuple[SourceRecord, TouchpointEvent]] = []
        latest = self._clock() + self._max_future
        # withdrawals dated too far ahead (dead-lettered) or a placeholder time (the zero
        # time, the epoch: expired), applied all the same, stamped with a time Moments can use
        ahead: list[Fact] = []
        stops: list[tuple[SourceRecord, TouchpointEvent]] = []  # of calls: see withdrawal_stops
        for record in records:
            try:
                event = decode_touchpoint(record_value(record.value))
                try:
                    not_ahead(event, latest, self._max_future)
                except InvalidEvent:
                    withdrawn = withdrawal_now(event, latest)
                    ahead += withdrawn
                    stops += _stop(record, event, withdrawn)
                    raise
                withdrawn = withdrawal_received(event, self._received_ms(record, latest))
                ahead += withdrawn
                stops += _stop(record, event, withdrawn)
                decoded.append((record, event))
                elsewhere = record.keyed_partition not in (None, record.partition)
                if record.key != event.customer_id.encode() or elsewhere:
                    result.misrouted += 1
            except InvalidEvent as exc:
                invalid = FailedRecord(record, f"invalid: {exc.reason}", len(result.results))
                result.dead_letters.append(invalid)
                result.results.append((exc.kind, "invalid"))
        await self._withdraw_now(ahead)
        if not decoded and not stops:
            return result
        statuses: list[ApplyStatus | None]
        events = [e for _, e in decoded]
        # see TouchpointDecisions.decide; kept across the batch's attempts (a retry reads
        # what the store kept of it when it applied the batch: see FeatureStore.apply)
        before = applied.newest_before if isinstance(applied, BatchMemory) else {}
        try:
            statuses = list(await self._apply_with_retries(events, earlier, applied, before)
                            if events else [])  # fmt: skip
        except StoreUnavailable:
            raise
        except Exception:
            # A batch that keeps failing: isolate the failing events one by one.
            statuses = []
            first = len(result.results)  # plan records the results of decoded, in order
            for at, (record, event) in enumerate(decoded, first):
                try:
                    (status,) = await self._apply_with_retries([event], earlier, applied)
                except StoreUnavailable:
                    raise
                except Exception as exc:
                    statuses.append(None)
                    failure = failure_reason("feature update", exc)
                    result.dead_letters.append(FailedRecord(record, failure, at))
                    continue
                statuses.append(status)
        # a call from a card whose contact Redis refuses is set aside, not decided: sent
        # back once the counter is mended, it is counted, then decided
        refused = await self._count_card_calls(decoded, statuses)
        plan = self._decisions.plan(decoded, statuses, result, earlier, stops, refused)
        if plan is not None:
            reads = await read_for_decisions(self._store, plan)
            self._decisions.decide(plan, reads, result, before)
        return result

    def _received_ms(self, record: SourceRecord, latest: datetime) -> int:
        """When Moments received ``record`` (:func:`agents.received.received_ms`): its
        Kafka timestamp, or when this worker took it, for a record with no time; for one
        sent back, no later than its first letter; no later than ``latest``."""
        taken = record.taken_ms if record.taken_ms is not None else ts_ms(self._clock())
        first = record.first_lettered if record.redriven_from else None
        return received_ms(record.produced_ms, first, taken, ts_ms(latest))

    async def _withdraw_now(self, facts: list[Fact]) -> None:
        """Apply the withdrawals of touchpoints dead-lettered for being dated too far
        ahead, or dated a placeholder time (before the batch's reads: its
        decisions honour them). Raises :class:`StoreUnavailable` only (the batch is
        retried; they are idempotent)."""
        if not facts:
            return
        try:
            await self._store.apply_facts(facts)
        except StoreUnavailable:
            raise
        except Exception:  # a customer's keys Redis refuses: the letter stays
            log.warning("withdrawals dated ahead or a placeholder time not applied",
                        exc_info=True)  # fmt: skip

    async def _count_card_calls(
        self,
        decoded: Sequence[tuple[SourceRecord, TouchpointEvent]],
        statuses: Sequence[ApplyStatus | None],
    ) -> dict[int, str]:
        """Count the calls made from alert cards against their customers' call caps
        (:mod:`feature_store.card_calls`), before the batch's decisions read them; each
        once, however often the batch is tried. Those whose contact Redis refuses (a
        counter that holds no integer): by record (its ``id``), the reason to set it
        aside (:meth:`TouchpointDecisions.plan`). Raises on an outage only (the batch is
        retried)."""
        calls = [(record, fact) for (record, event), status in zip(decoded, statuses, strict=True)
                 if status is not None for fact in card_call_facts(event)]  # fmt: skip
        if not calls:
            return {}
        ran: dict[int, ApplyStatus] = {}
        try:
            await self._store.apply_facts([fact for _, fact in calls], ran)
        except Exception as exc:
            if outage(exc):
                raise
            reason = failure_reason("call contact", exc)
            refused = {id(record): reason for i, (record, _) in enumerate(calls) if i not in ran}
            log.warning("the contacts of %d calls made from alert cards were refused "
                        "(%s); their touchpoints are dead-lettered", len(refused),
                        type(exc).__name__)  # fmt: skip
            return refused
        return {}

    async def _apply_with_retries(
        self,
        events: list[TouchpointEvent],
        earlier: Counter[EventKey],
        applied: Counter[EventKey] | None,
        newest_before: dict[str, RecentTouchpoint | None] | None = None,
    ) -> list[ApplyStatus]:
        """Apply, retrying a failure; the events an attempt applied go into ``applied``
        (the caller's, kept across its retries of the batch), and those of a failed
        attempt into ``earlier`` too: the next attempt finds them applied by this batch.
        So do those whose replies the connection lost (Redis may have applied them).
        ``newest_before`` is read by the first attempt that reads it (see
        :meth:`FeatureStore.apply`)."""
        for attempt in range(1, self._max_attempts + 1):
            ran: dict[int, ApplyStatus] = {}
            failure: Exception | None = None
            before = newest_before if newest_before is not None and not newest_before else None
            try:
                statuses = await self._store.apply(events, ran, before)
            except Exception as exc:
                failure = exc
            now = [event_key(events[i]) for i, s in ran.items() if s is ApplyStatus.APPLIED]
            if isinstance(failure, RepliesUnknown):  # these may have been applied: a retry
                # that finds them applied counts them so (an id once: a copy is a duplicate;
                # nor one a reply came for, which said what became of it)
                maybe = {event_key(events[i]) for i in failure.unanswered}
                answered = {event_key(events[i]) for i in ran}
                now += sorted(maybe.difference(now, earlier, answered))
            if applied is not None:
                applied.update(now)
            if failure is None:
                return statuses
            earlier.update(now)
            if attempt == self._max_attempts or isinstance(failure, StoreUnavailable):
                raise failure
            log.warning("feature update failed (attempt %d), retrying", attempt, exc_info=failure)
        raise AssertionError("unreachable")

    async def without_erased(self, result: BatchResult) -> None:
        """Leave out of ``result`` the decisions, alerts and churn-risk examples of
        customers erased since the batch read their features (while it was decided, or
        waited for Kafka), and the dead letters of records naming an erased customer (by
        key or ``customer_id``, whenever they were erased): nothing more is sent about
        them. Call it before each attempt to send the batch; what the decisions left out
        spent of the budgets goes back. One round trip (two when some are left out); none
        when the batch sends nothing naming a customer."""
        sent: list[NextBestOffer | Intervention] = [
            *result.decisions,
            *result.interventions,
            *result.held_out,
        ]
        named = [failed.customers for failed in result.dead_letters]
        customers = list(dict.fromkeys(
            [*(d.customer_id for d in sent), *result.example_customers.values(),
             *(c for names in named for c in names)]
        ))  # fmt: skip
        if not customers:
            return
        found = await self._store.erased(customers)
        gone = {c for c, erased in zip(customers, found, strict=True) if erased}
        result.leave_out_letters(named, gone)  # not copied anew into the dead-letter topic
        left = result.leave_out(gone)
        # what an earlier attempt delivered was shown: its spending stays counted
        spent = result.spending(d for d in left if id(d) not in result.delivered)
        if spent:  # an earlier attempt's reserve may have counted them
            await self._store.budgets.take_back(spent, for_good=False)

    async def reserve(self, result: BatchResult) -> Refusals:
        """Call before each attempt to send the batch, after :meth:`without_erased`:
        count the budget spending of its decisions within their limits and record their
        contacts within their caps, deciding again those the store refuses
        (:mod:`agents.reserved_contacts`); how many it refused. The store refuses the
        decision of a customer erased meanwhile, which leaves out all about them; the
        customers the batch names otherwise (an alert, a risk example or a dead letter
        without a decision) are checked again after it, so that what is sent about
        them, too, was checked one round trip before the send, not before the
        recording's."""
        recorded = bool(result.decisions)  # reserving them takes round trips
        refusals = await self._reservations.reserve(result)
        if recorded and _named_without_decision(result):
            await self.without_erased(result)
        return refusals

    async def confirm(self, result: BatchResult) -> None:
        """Call once the batch's decisions are delivered: count the offer budgets they
        spent, record the contacts they made (for fatigue caps and cool-downs) and let
        replays skip them (what :meth:`reserve` counted already counts once). The budgets
        go first: a replay decides again (with the same decision ids) whatever was not
        recorded, and the store counts a decision once."""
        contacts = offers_shown(result.decisions)
        alerts = result.interventions + result.held_out
        contacts += [
            intervention_fact(
                i.intervention_id,
                i.customer_id,
                i.kind,
                i.ts,
                held_out=i.control,
                priority=i.priority,
                reasons=i.reasons,
            )
            for i in alerts
        ]
        records = [decision_record(d) for d in result.decisions]
        records += [decision_record(i) for i in alerts]
        # the limits the batch was decided with (none: its decisions spent nothing)
        spent = result.spending(result.decisions)
        if spent:  # first: if the record fails after it, the replay counts nothing twice
            await self._store.budgets.add(spent)
        faults: dict[str, Exception] = {}  # customers whose keys fail the write
        await self._store.decisions.record(records, contacts + result.risk_facts, faults=faults)
        if faults:  # sent already: their alerts' cool-downs are not kept, the rest is
            log.warning("%d customers' alerts or decisions were sent but could not be "
                        "recorded (%s): their cool-downs are not kept", len(faults),
                        fault_kinds(faults))  # fmt: skip


def _stop(
    record: SourceRecord, event: TouchpointEvent, withdrawn: list[Fact]
) -> list[tuple[SourceRecord, TouchpointEvent]]:
    """The stop (:func:`agents.withdrawal_stops.call_stop`) of ``record``'s withdrawal
    applied out of band, if it withdraws consent to calls."""
    stop = call_stop(event, withdrawn)
    return [] if stop is None else [(record, stop)]


def _named_without_decision(result: BatchResult) -> bool:
    """Whether ``result`` sends something naming a customer who has no decision in it
    (an alert, a held-out alert, a risk example or a dead letter)."""
    decided = {d.customer_id for d in result.decisions}
    named = [
        *(a.customer_id for a in (*result.interventions, *result.held_out)),
        *(result.example_customers.get(e.example_id) for e in result.risk_examples),
        *(c for failed in result.dead_letters for c in failed.customers),
    ]
    return any(c not in decided for c in named)
