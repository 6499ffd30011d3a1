"""Deciding one batch of recommendations and storing its decisions, within the latency
budget, the daily offer budgets and the contact ceilings; the batches themselves are
gathered by :class:`streams.api.recommender.Recommender`.

Batches overlap: one may read while earlier ones are still deciding or storing their
decisions. Each decision also counts the contacts and budget spending of this process's
decisions that its read does not show yet (:mod:`streams.api.inflight`), as a customer
asked for twice in one batch counts the first decision in the second.

When the latency budget runs out before the decision is taken, the caller gets a
fallback and the decision is never taken; when it runs out while the decision is being
stored, the caller gets the decision at once and it is stored and published as usual
(but while the daily budgets it spends are still being counted, a fallback: that count
may refuse it). A decision whose caller was answered otherwise before it was recorded
(that fallback, or a caller gone) is not recorded: the customer never saw it, so it
counts against none of their caps.

A customer erased after the batch read their features and before their decision is
stored: the store refuses the decision, and it is not published; a caller still waiting
is answered as for an erased customer (``None``). The daily offer budgets are counted
in a round trip before the decisions are recorded, within their limits: a decision that
would take one past its limit (other processes spent it since the read) is refused, and
decided again as below. What a decision added to the budgets is taken back whenever its
caller was not answered with it (refused at erasure, the round trip failed, the caller
left); one that was answered (the latency budget ran out meanwhile) was shown, and stays
counted.

Contact caps and cool-downs hold across processes: each decision's contact carries the
caps it was screened against (:mod:`agents.contact_ceilings`), and the store refuses it,
with its decision, when another process's contact recorded since the read took a cap to
its limit. Its request (as that of a decision over a budget) is then decided again,
under a new decision id, from a new read (which shows that contact), within the same
latency budget; after ``MAX_ROUNDS`` such refusals in a row it is answered with the last
decision stripped of its offers
(``suppressed:contact_contended``). (A refused decision whose caller was already answered
with it, the budget having run out, was shown: it is recorded all the same, without its
ceilings.)

A decision that fails fails its own request alone, its caller getting a fallback: one
customer's keys that Redis cannot serve as they should be (a key of another type, a
field that is not a number), on the read or on the write, or features the policy cannot
take. A day's offer-budget count that cannot be read (no integer, or the day's counts a
key of another type) closes its offer for the day (:func:`agents.budget_reads.spent_today`),
as in the worker: the batch is decided with the other offers.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from agents.budget_reads import spent_today
from agents.contact_ceilings import MAX_ROUNDS, contended, offers_shown_within
from agents.contact_ledger import contacted
from agents.contact_policy import FIRST_CONTACT
from agents.decision_records import decision_record, offers_shown
from agents.moments import request_moment
from agents.offer_budget import BudgetLedger, budget_day, budget_spending
from agents.offer_policy import OfferPolicy
from feature_store import BudgetSpend, CustomerFeatures, FeatureStore
from feature_store.facts import Fact
from feature_store.records import DecisionRecord
from schemas import OfferCatalogue, encode_decision
from streams.api.answers import (
    Decided,
    OfferRequest,
    answer_stored,
    answered_with,
    fail,
    sort_refused,
)
from streams.api.decision_outbox import DecisionOutbox
from streams.api.inflight import InFlightDecisions, Unseen

log = logging.getLogger(__name__)

# keyed decisions, answered (and their decision ids, when known)
Publish = Callable[[list[tuple[bytes, bytes]], list[str] | None], None]
PublishChecked = Callable[[list[tuple[bytes, bytes]]], None]  # keyed, their write failed


@dataclass(frozen=True, slots=True)
class _BatchRead:
    """What a batch decides from."""

    views: list[tuple[bool, CustomerFeatures | None]]  # per request: erased?, features
    # customers whose keys failed the read (a key of another type): they alone fall back
    faults: Mapping[str, Exception]
    unseen: Unseen  # what the read does not show of other batches' decisions
    budgets: BudgetLedger | None  # the day's offer budgets, theirs counted
    now: datetime  # the decisions' time


@dataclass(frozen=True, slots=True)
class _Stored:
    """What became of a batch's decisions at the store."""

    # per decision, whether it was stored (not: its customer erased since the read, its
    # caller answered otherwise meanwhile, or it was refused)
    kept: list[bool]
    over_budget: frozenset[str] = frozenset()  # refused over a daily budget
    over_ceiling: frozenset[str] = frozenset()  # refused, its contact over a ceiling
    # customers whose keys failed the write (a key of another type): they alone fall back
    faults: Mapping[str, Exception] = field(default_factory=dict)
    # the write failed (it may or may not have run): no decision is known refused over a
    # ceiling; those over a budget were refused before the record was sent
    failure: Exception | None = None

    @classmethod
    def failed(
        cls,
        decided: list[Decided],
        failure: Exception,
        over_budget: frozenset[str] = frozenset(),
        faults: Mapping[str, Exception] | None = None,
    ) -> _Stored:
        return cls([True] * len(decided), over_budget, frozenset(), faults or {}, failure)

    @property
    def refused(self) -> frozenset[str]:
        """The decisions refused, over a budget or a contact ceiling: not stored."""
        return self.over_budget | self.over_ceiling


def _uncounted(_: object) -> None:
    pass


@dataclass(frozen=True, slots=True)
class DecisionCounters:
    """What deciding recommendations counts (the API's metrics): each is called with
    its count (``budgets_counted`` with the daily budgets as read)."""

    batch_decided: Callable[[int], None] = _uncounted  # requests per batch
    contacts_refused: Callable[[int], None] = _uncounted  # over a contact cap at write
    budgets_refused: Callable[[int], None] = _uncounted  # over a daily budget at write
    budgets_counted: Callable[[BudgetLedger], None] = _uncounted
    publish_failed: Callable[[int], None] = _uncounted  # decisions Kafka did not take
    # decisions not sent (again) once their customer was erased
    publish_erased: Callable[[int], None] = _uncounted


UNCOUNTED = DecisionCounters()


class BatchDecisions:
    """Decides batches of offer requests, each in one read and one write of Redis, and
    answers their callers; publishes the decisions answered through ``publish`` (or
    ``publish_checked``, once Redis says their customers are not erased, when their
    write failed)."""

    def __init__(
        self,
        store: FeatureStore,
        policy: OfferPolicy,
        publish: Publish,
        publish_checked: PublishChecked,
        counters: DecisionCounters = UNCOUNTED,
        outbox: DecisionOutbox | None = None,
    ) -> None:
        """``outbox``: where the decisions recorded wait until Kafka has them (in the
        round trip that records them); those not to be published leave it at once."""
        self._store = store
        self._outbox = outbox
        self._policy = policy
        self._publish = publish
        self._publish_checked = publish_checked
        self._counters = counters
        self._inflight = InFlightDecisions()  # decided, not stored yet: other batches count them

    async def decide(self, batch: list[OfferRequest], due: float, round_: int = 1) -> None:
        """Decide ``batch``; ``due``: when its latency budget runs out (loop time);
        ``round_``: how many times these requests have been decided (see MAX_ROUNDS)."""
        decided: list[Decided] = []
        spending: list[BudgetSpend] = []  # what the decisions add to the daily budgets
        # one catalogue for the whole batch: a reload meanwhile must not leave the budgets
        # it read unchecked or its decisions' spending uncounted
        catalogue = self._policy.catalogue.current
        try:
            read = await self._read(batch, catalogue)
            decided = self._decide_each(batch, read, catalogue, due)
            if read.budgets is not None:
                self._counters.budgets_counted(read.budgets)
            spending = budget_spending((d for _, d, _ in decided), catalogue)
            spends = {s.decision_id for s in spending}
            for request, decision, _ in decided:  # shown once counted (see _store_decided)
                request.cleared = decision.decision_id not in spends
            # other batches count them until stored (or not): a decision taken may be
            # answered meanwhile (see streams.api.answers.expire)
            writing = self._store_decided(decided, spending, catalogue)
            (stored,) = await self._inflight.store((d for _, d, _ in decided), spending, writing)
        except Exception as exc:  # not stored, or not known to be
            stored = _Stored.failed(decided, exc)
        finally:
            if round_ == 1:  # a request decided again is not another batch
                self._counters.batch_decided(len(batch))
        failure = stored.failure
        if stored.over_ceiling:
            self._counters.contacts_refused(len(stored.over_ceiling))
        if stored.over_budget:
            self._counters.budgets_refused(len(stored.over_budget))
        again, shown = sort_refused(decided, stored.refused)
        answered, unmade = answer_stored(
            decided, stored.kept, stored.faults, failure, stored.refused
        )
        for request in batch:
            if failure is not None and not request.answer.done():
                request.answer.set_exception(failure)
        if failure is None:  # answered: those handed over, in the batch's order
            self._publish(answered, [d.decision_id for r, d, _ in decided if r.handed])
        else:  # shown, but the write failed: published once the store says not erased
            self._publish_checked(answered)
        if again and (round_ == MAX_ROUNDS or asyncio.get_running_loop().time() >= due):
            # other processes kept contacting them: nothing is shown
            for request, decision, _ in again:
                stripped = contended(decision)
                if not request.answer.done():
                    request.answer.set_result(stripped)
                    request.decision = stripped  # shown: counted if the drain runs out
                    shown.append((request, stripped, encode_decision(stripped)))
            again = []
        if shown and self._outbox is not None:  # at once: recorded after round trips
            self._outbox.shown([], [(d.decision_id, raw) for _, d, raw in shown])
        # those neither published nor recorded again leave the outbox, with no await
        # since their write's reply (see the known limits)
        if self._outbox is not None:
            going = {d.decision_id for r, d, _ in decided if r.handed}
            going.update(d.decision_id for _, d, _ in shown)
            self._outbox.release(d.decision_id for _, d, _ in decided
                                 if d.decision_id not in going)  # fmt: skip
        # after every answer, within the batch (drain waits for it); one that a caller
        # was answered with when the latency budget ran out was shown: it stays counted
        unspent = [s for s in spending if s.decision_id in unmade]
        if unspent:
            try:
                await self._store.budgets.take_back(unspent, for_good=True)
            except Exception as exc:  # counted high by them: fewer shown, none over
                log.warning("could not take back the budget spending of %d decisions "
                            "never shown: %s", len(unspent), exc)  # fmt: skip
        if shown:
            await self._record_answered(shown, catalogue)
        if again:
            for request, _, _ in again:  # a new decision, under a new id
                moment = request.moment
                request.moment = request_moment(moment.customer_id, moment.channel, moment.limit)
            await self.decide([r for r, _, _ in again], due, round_ + 1)

    async def _read(self, batch: list[OfferRequest], catalogue: OfferCatalogue) -> _BatchRead:
        """Read the batch's customers, and the day's budgets, in one round trip."""
        # unseen: what this read does not show of the decisions of other batches
        asked_for = [r.moment.customer_id for r in batch]
        faults: dict[str, Exception] = {}  # filled by the read, as its reply comes
        timezone = catalogue.contact_policy.timezone  # whose days the budgets count
        reading = self._inflight.read(  # and the caps of a customer not told theirs
            self._store.read_for_decisions(asked_for, faults=faults, home_timezone=timezone)
        )
        spent: dict[str, int] = {}
        limits = catalogue.daily_limits()
        today = budget_day(datetime.now(UTC), timezone)
        if limits:  # the day's offer budgets, in the same round trip
            # a count that cannot be read closes its offer for the day, not the batch
            counting = self._inflight.read_spent(spent_today(self._store, today, limits))
            (unseen, views), (unspent, spent) = await asyncio.gather(reading, counting)
            spent = unspent.spent(today, spent)
        else:
            unseen, views = await reading
        now = datetime.now(UTC)
        budgets = BudgetLedger.for_day(now, limits, spent, today, timezone) if limits else None
        return _BatchRead(views, faults, unseen, budgets, now)

    def _decide_each(
        self, batch: list[OfferRequest], read: _BatchRead, catalogue: OfferCatalogue, due: float
    ) -> list[Decided]:
        """The decisions for each request still waiting; those that cannot be decided
        are answered here (erased, out of time, failed)."""
        decided: list[Decided] = []
        # a customer asked for twice in one batch: the second decision counts the
        # offers of the first against the caps and cool-downs
        asked = Counter(r.moment.customer_id for r in batch)
        contacts: dict[str, CustomerFeatures] = {}
        loop = asyncio.get_running_loop()
        for request, (erased, features) in zip(batch, read.views, strict=True):
            if request.answer.done():  # its caller gave up
                continue
            if loop.time() >= due:  # deciding took the rest of the budget: fallbacks
                request.answer.set_exception(TimeoutError())
                continue
            if erased:  # answered, but nothing is kept or sent about them
                request.answer.set_result(None)
                continue
            customer_id = request.moment.customer_id
            if customer_id in read.faults:
                fail(request, read.faults[customer_id])
                continue
            if customer_id in contacts:
                features = contacts[customer_id]
            else:  # with what other batches showed them, if the read missed it
                features = read.unseen.contacted(customer_id, features)
            try:
                decision = self._policy.decide(
                    request.moment, features, read.now, read.budgets, catalogue
                )
            except Exception as exc:  # this customer's features: the others go on
                fail(request, exc)
                continue
            if asked[customer_id] > 1:  # a first contact's too: it is one no longer
                contacts[customer_id] = contacted(features or FIRST_CONTACT, decision)
            request.decision = decision
            request.timezone = features.timezone if features is not None else None
            decided.append((request, decision, encode_decision(decision)))
        return decided

    async def _store_decided(
        self, decided: list[Decided], spending: list[BudgetSpend], catalogue: OfferCatalogue
    ) -> _Stored:
        """Count the decisions' budget spending within the limits, then record those it
        did not refuse, with their contacts."""
        over_budget: frozenset[str] = frozenset()
        if spending:  # a round trip before the record: a refused decision is not made
            over = await self._take(spending, catalogue.daily_limits())
            for request, decision, _ in decided:  # may be shown now (None: soft limits)
                request.cleared = over is None or decision.decision_id not in over
            if over is not None:  # counted in Redis: later reads show it, not held
                self._inflight.counted(spending)
                self._inflight.refused(over)  # no contact: other batches count none
                over_budget = frozenset(over)
        # a caller answered otherwise meanwhile (a fallback, the budget count having taken
        # the rest of the time; or gone) was not shown it: nothing of it is kept
        made = [
            (r, d, raw)
            for r, d, raw in decided
            if d.decision_id not in over_budget
            and (not r.answer.done() or answered_with(r.answer, d))
        ]
        if not made:
            return _Stored([False] * len(decided), over_budget)
        faults: dict[str, Exception] = {}  # filled by the record, as its reply comes
        over_ceiling: set[str] = set()  # likewise
        try:
            timezones = {r.moment.customer_id: r.timezone for r, _, _ in made}
            decided_in = ((d, r.moment.inbound) for r, d, _ in made)
            shown = offers_shown_within(decided_in, catalogue, timezones)
            records = [decision_record(d, raw) for _, d, raw in made]
            recorded = await self._record(records, shown, made, faults, over_ceiling)
        except Exception as exc:
            return _Stored.failed(decided, exc, over_budget, faults)
        kept = iter(recorded)
        made_ids = {d.decision_id for _, d, _ in made}
        stored = [d.decision_id in made_ids and next(kept) for _, d, _ in decided]
        return _Stored(stored, over_budget, frozenset(over_ceiling), faults)

    async def _record_answered(self, answered: list[Decided], catalogue: OfferCatalogue) -> None:
        """Record, without ceilings, decisions answered outside a batch's write (refused
        ones that were shown all the same, and those stripped of their offers after
        ``MAX_ROUNDS``), with their budget spending, unchecked (it was shown), and publish
        those kept."""
        records = [decision_record(d, raw) for _, d, raw in answered]
        shown = offers_shown(d for _, d, _ in answered)
        spending = budget_spending((d for _, d, _ in answered), catalogue)
        try:
            if spending:  # counted once: a decision over a ceiling counted them already
                await self._store.budgets.add(spending)
            kept = await self._record(records, shown, answered)
        except Exception as exc:  # answered all the same: the counts low by them
            log.warning("%d decisions answered outside their batch were not recorded: %s",
                        len(answered), exc)  # fmt: skip
            self._handed(answered)
            self._publish_checked([(d.customer_id.encode(), raw) for _, d, raw in answered])
            return
        self._handed(answered)  # with no await before they are handed over (see drain)
        # not those erased meanwhile
        published = [(d, raw) for (_, d, raw), k in zip(answered, kept, strict=True) if k]
        self._publish([(d.customer_id.encode(), raw) for d, raw in published],
                      [d.decision_id for d, _ in published])  # fmt: skip
        if self._outbox is not None:
            self._outbox.release(d.decision_id for (_, d, _), k in zip(answered, kept, strict=True)
                                 if not k)  # fmt: skip

    async def _record(
        self,
        records: list[DecisionRecord],
        shown: Sequence[Fact],
        decided: list[Decided],
        faults: dict[str, Exception] | None = None,
        refused: set[str] | None = None,
    ) -> list[bool]:
        """Record the decisions, keeping them in the outbox in the same round trip."""
        decisions = self._store.decisions
        if self._outbox is None:
            return await decisions.record(records, shown, faults=faults, refused=refused)
        return await self._outbox.recording(
            [(d.decision_id, raw) for _, d, raw in decided],
            lambda held, heard: decisions.record(
                records, shown, faults=faults, refused=refused, outbox=held, outbox_heard=heard
            ),
        )

    @staticmethod
    def _handed(answered: list[Decided]) -> None:
        for request, _, _ in answered:
            request.handed = True

    async def _take(
        self, spending: list[BudgetSpend], limits: Mapping[str, int]
    ) -> set[str] | None:
        """Count the batch's spending within the budgets' limits; the ids of the
        decisions refused, or ``None`` when the write failed (on a Redis Cluster the
        counts live on another node): the decisions are made all the same, the counts
        stay low by them (logged), and the limits are soft until it comes back."""
        try:
            return await self._store.budgets.take(spending, limits)
        except Exception as exc:
            log.warning("the budget spending of %d decisions was not counted: %s",
                        len(spending), exc)  # fmt: skip
            return None
