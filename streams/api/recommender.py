"""Live recommendations, decided in batches: requests that arrive together share one
Redis read, one Redis write and one Kafka batch.

Every request still gets a decision of its own (its own id, the customer's features as
read now, the contact policy, the model snapshot in use); only the round trips are
shared. A lone request goes at the next turn of the event loop; while batches are
being decided (under load), new requests wait up to ``gather_s`` for company, which
makes batches larger and each request cheaper.

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
take.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from agents.contact_ceilings import MAX_ROUNDS, contended, offers_shown_within
from agents.contact_ledger import contacted
from agents.contact_policy import FIRST_CONTACT
from agents.decision_records import decision_record, offers_shown
from agents.moments import request_moment
from agents.offer_budget import BudgetLedger, offers_spent
from agents.offer_policy import OfferPolicy
from feature_store import BudgetSpend, CustomerFeatures, FeatureStore
from schemas import NextBestOffer, OfferCatalogue, decode_next_best_offer, encode_decision
from streams.api.answers import (
    Decided,
    OfferRequest,
    answer_stored,
    answered_with,
    expire,
    fail,
    shown_not_handed,
    sort_refused,
)
from streams.api.decision_delivery import DecisionDelivery
from streams.api.fallback_outbox import FallbackOutbox
from streams.api.inflight import InFlightDecisions, Unseen
from streams.api.publisher import KeyedPublisher

log = logging.getLogger(__name__)
# Batches sending or awaiting their round trips at most: past it (Redis answering slower
# than requests come), a new batch is answered with fallbacks at once rather than queue
# reads Redis would serve after their callers were answered anyway.
MAX_BATCHES_IN_FLIGHT = 16


@dataclass(frozen=True, slots=True)
class _BatchRead:
    """What a batch decides from."""

    views: list[tuple[bool, CustomerFeatures | None]]  # per request: erased?, features
    unseen: Unseen  # what the read does not show of other batches' decisions
    budgets: BudgetLedger | None  # the day's offer budgets, theirs counted
    now: datetime  # the decisions' time


class Recommender:
    """Decides next-best offers for HTTP requests, many per round trip."""

    def __init__(
        self,
        store: FeatureStore,
        policy: OfferPolicy,
        publisher: KeyedPublisher,
        topic: str,
        budget_s: float = 0.05,
        max_batch: int = 32,
        gather_s: float = 0.0,
        publish_failed: Callable[[int], None] = lambda n: None,
        batch_decided: Callable[[int], None] = lambda n: None,
        contacts_refused: Callable[[int], None] = lambda n: None,
        budgets_refused: Callable[[int], None] = lambda n: None,
        budgets_counted: Callable[[BudgetLedger], None] = lambda ledger: None,
    ) -> None:
        self._store = store
        self._policy = policy
        self._publisher = publisher
        self._topic = topic
        self._max_batch = max_batch
        self._gather_s = gather_s
        self.budget_s = budget_s  # the latency budget (the view gives an erased customer's
        # answer what is left of it)
        self._publish_failed = publish_failed
        self._delivery = DecisionDelivery(publisher, topic, publish_failed)
        self._batch_decided = batch_decided
        self._contacts_refused = contacts_refused
        self._budgets_refused = budgets_refused
        self._budgets_counted = budgets_counted
        self._waiting: list[OfferRequest] = []
        self._first_waiting_since = 0.0
        self._flush_scheduled = False
        self._running: dict[asyncio.Task[None], list[OfferRequest]] = {}  # batches under way
        self._deciding = 0  # batches being decided now
        self._inflight = InFlightDecisions()  # decided, not stored yet: other batches count them
        # fallbacks are recorded and published once Redis says their customers are not erased
        self._fallbacks = FallbackOutbox(self._record_fallbacks, self._publish, publish_failed)

    async def recommend(self, customer_id: str, channel: str, limit: int) -> NextBestOffer | None:
        """The decision for one request; ``None`` for an erased customer.

        Raises :class:`TimeoutError` when the latency budget ran out, and
        :class:`feature_store.StoreUnavailable` when Redis cannot be reached.
        """
        loop = asyncio.get_running_loop()
        request = OfferRequest(request_moment(customer_id, channel, limit), loop.create_future())
        if not self._waiting:
            self._first_waiting_since = loop.time()
        self._waiting.append(request)
        if len(self._waiting) >= self._max_batch:
            self._flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            if self._gather_s > 0 and self._deciding:  # under load: let the batch grow
                loop.call_later(self._gather_s, self._flush)
            else:  # nothing under way: go at the next turn of the loop
                loop.call_soon(self._flush)
        return await request.answer

    def as_if_unknown(self, customer_id: str, channel: str, limit: int) -> NextBestOffer:
        """The answer for an erased customer: what someone Moments knows nothing of is
        offered, so that the answer does not tell that they were erased. Nothing is kept,
        spent or sent about them, so none of the offers with a daily budget (shown, it
        would go uncounted, and the budget past its limit)."""
        catalogue = self._policy.catalogue.current
        limits = catalogue.daily_limits()
        now = datetime.now(UTC)
        spent_all = BudgetLedger.for_day(now, limits, limits) if limits else None
        moment = request_moment(customer_id, channel, limit)
        return self._policy.decide(moment, None, now, spent_all, catalogue)

    def _flush(self) -> None:
        self._flush_scheduled = False
        batch, self._waiting = self._waiting, []
        if not batch:
            return
        if len(self._running) >= MAX_BATCHES_IN_FLIGHT:  # Redis is not keeping up
            expire(batch)
            return
        loop = asyncio.get_running_loop()
        # one timer per batch, not one per request: the budget runs from the first
        # request's arrival, so no request waits longer than the budget
        due = self._first_waiting_since + self.budget_s
        deadline = loop.call_at(due, expire, batch)
        task = loop.create_task(self._decide(batch, due))
        task.add_done_callback(lambda _: deadline.cancel())
        self._track(task, batch)

    async def _decide(self, batch: list[OfferRequest], due: float) -> None:
        self._deciding += 1
        try:
            await self._decide_batch(batch, due)
        except Exception as exc:  # a fault of Moments' own: no caller is left waiting
            # by its kind alone: its message may quote what it failed on
            log.error("a batch of recommendations failed: %s", type(exc).__name__)
            for request in batch:
                if not request.answer.done():
                    request.answer.set_exception(exc)
        finally:
            self._deciding -= 1

    async def _decide_batch(self, batch: list[OfferRequest], due: float, round_: int = 1) -> None:
        """Decide ``batch``; ``due``: when its latency budget runs out (loop time);
        ``round_``: how many times these requests have been decided (see MAX_ROUNDS)."""
        decided: list[Decided] = []
        kept: list[bool] = []  # per decision, whether it was stored (not: its customer erased)
        refused: set[str] = set()  # decisions over a budget or a contact ceiling: not stored
        over_budget: set[str] = set()  # those over a budget
        failure: Exception | None = None
        spending: list[BudgetSpend] = []  # what the decisions add to the daily budgets
        # one catalogue for the whole batch: a reload meanwhile must not leave the budgets
        # it read unchecked or its decisions' spending uncounted
        catalogue = self._policy.catalogue.current
        limits = catalogue.daily_limits()
        # customers whose keys failed a call (a key of another type): they alone fall back
        faults: dict[str, Exception] = {}
        try:
            read = await self._read(batch, limits, faults)
            self._decide_each(batch, read, catalogue, due, faults, decided)
            if read.budgets is not None:
                self._budgets_counted(read.budgets)
            spending = offers_spent((d for _, d, _ in decided), limits) if limits else []
            spends = {s.decision_id for s in spending}
            for request, decision, _ in decided:  # shown once counted (see _store_decided)
                request.cleared = decision.decision_id not in spends
            # other batches count them until stored (or not): a decision taken may be
            # answered meanwhile (see streams.api.answers.expire)
            writing = self._store_decided(decided, spending, faults, catalogue, refused,
                                          over_budget)  # fmt: skip
            (kept,) = await self._inflight.store((d for _, d, _ in decided), spending, writing)
        except Exception as exc:
            failure = exc
        finally:
            if round_ == 1:  # a request decided again is not another batch
                self._batch_decided(len(batch))
        if failure is not None:  # not stored, or not known to be: none was refused over a
            # ceiling; those over a budget were refused before the record was sent
            kept, refused = [True] * len(decided), set(over_budget)
        if refused - over_budget:
            self._contacts_refused(len(refused - over_budget))
        if over_budget:
            self._budgets_refused(len(over_budget))
        again, shown = sort_refused(decided, refused)
        answered, unmade = answer_stored(decided, kept, faults, failure, refused)
        for request in batch:
            if failure is not None and not request.answer.done():
                request.answer.set_exception(failure)
        if failure is None:
            self._publish(answered)
        else:  # shown, but the write failed: published once the store says not erased
            self._publish_checked(answered)
        # after every answer, within the batch (drain waits for it); one that a caller
        # was answered with when the latency budget ran out was shown: it stays counted
        unspent = [s for s in spending if s.decision_id in unmade]
        if unspent:
            try:
                await self._store.budgets.take_back(unspent, for_good=True)
            except Exception as exc:  # counted high by them: fewer shown, none over
                log.warning("could not take back the budget spending of %d decisions "
                            "never shown: %s", len(unspent), exc)  # fmt: skip
        if again and (round_ == MAX_ROUNDS or asyncio.get_running_loop().time() >= due):
            # other processes kept contacting them: nothing is shown
            for request, decision, _ in again:
                stripped = contended(decision)
                if not request.answer.done():
                    request.answer.set_result(stripped)
                    request.decision = stripped  # shown: counted if the drain runs out
                    shown.append((request, stripped, encode_decision(stripped)))
            again = []
        if shown:
            await self._record_answered(shown, limits)
        if again:
            for request, _, _ in again:  # a new decision, under a new id
                moment = request.moment
                request.moment = request_moment(moment.customer_id, moment.channel, moment.limit)
            await self._decide_batch([r for r, _, _ in again], due, round_ + 1)

    async def _read(
        self, batch: list[OfferRequest], limits: Mapping[str, int], faults: dict[str, Exception]
    ) -> _BatchRead:
        """Read the batch's customers, and the day's budgets, in one round trip."""
        # unseen: what this read does not show of the decisions of other batches
        asked_for = [r.moment.customer_id for r in batch]
        reading = self._inflight.read(self._store.read_for_decisions(asked_for, faults=faults))
        spent: dict[str, int] = {}
        today = datetime.now(UTC).date()
        if limits:  # the day's offer budgets, in the same round trip
            counting = self._inflight.read_spent(self._store.budgets.spent(today))
            (unseen, views), (unspent, spent) = await asyncio.gather(reading, counting)
            spent = unspent.spent(today, spent)
        else:
            unseen, views = await reading
        now = datetime.now(UTC)
        budgets = BudgetLedger.for_day(now, limits, spent, today) if limits else None
        return _BatchRead(views, unseen, budgets, now)

    def _decide_each(
        self,
        batch: list[OfferRequest],
        read: _BatchRead,
        catalogue: OfferCatalogue,
        due: float,
        faults: dict[str, Exception],
        decided: list[Decided],
    ) -> None:
        """Decide for each request still waiting, adding the decisions to ``decided``;
        those that cannot be decided are answered here (erased, out of time, failed)."""
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
            if customer_id in faults:
                fail(request, faults[customer_id])
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
            decided.append((request, decision, encode_decision(decision)))

    async def _store_decided(
        self,
        decided: list[Decided],
        spending: list[BudgetSpend],
        faults: dict[str, Exception],
        catalogue: OfferCatalogue,
        refused: set[str],
        over_budget: set[str],
    ) -> list[bool]:
        """Count the decisions' budget spending within the limits, then record those it
        did not refuse, with their contacts; per decision, whether it was stored (not:
        its customer erased since the read, its caller answered otherwise meanwhile, or
        it was refused, its id in ``refused``: over a budget, its id in ``over_budget``
        too, or its contact over a ceiling)."""
        if spending:  # a round trip before the record: a refused decision is not made
            over = await self._take(spending, catalogue.daily_limits())
            for request, decision, _ in decided:  # may be shown now (None: soft limits)
                request.cleared = over is None or decision.decision_id not in over
            if over is not None:  # counted in Redis: later reads show it, not held
                self._inflight.counted(spending)
                self._inflight.refused(over)  # no contact: other batches count none
                over_budget |= over
            refused |= over_budget
        # a caller answered otherwise meanwhile (a fallback, the budget count having taken
        # the rest of the time; or gone) was not shown it: nothing of it is kept
        made = [
            (r, d, raw)
            for r, d, raw in decided
            if d.decision_id not in over_budget
            and (not r.answer.done() or answered_with(r.answer, d))
        ]
        if not made:
            return [False] * len(decided)
        shown = offers_shown_within(((d, r.moment.inbound) for r, d, _ in made), catalogue)
        records = [decision_record(d, raw) for _, d, raw in made]
        kept = iter(
            await self._store.decisions.record(records, shown, faults=faults, refused=refused)
        )
        made_ids = {d.decision_id for _, d, _ in made}
        return [d.decision_id in made_ids and next(kept) for _, d, _ in decided]

    async def _record_answered(self, answered: list[Decided], limits: Mapping[str, int]) -> None:
        """Record, without ceilings, decisions answered outside a batch's write (refused
        ones that were shown all the same, and those stripped of their offers after
        ``MAX_ROUNDS``), with their budget spending, unchecked (it was shown), and publish
        those kept."""
        records = [decision_record(d, raw) for _, d, raw in answered]
        shown = offers_shown(d for _, d, _ in answered)
        spending = offers_spent((d for _, d, _ in answered), limits) if limits else []
        try:
            if spending:  # counted once: a decision over a ceiling counted them already
                await self._store.budgets.add(spending)
            kept = await self._store.decisions.record(records, shown)
        except Exception as exc:  # answered all the same: the counts low by them
            log.warning("%d decisions answered outside their batch were not recorded: %s",
                        len(answered), exc)  # fmt: skip
            self._handed(answered)
            self._publish_checked([(d.customer_id.encode(), raw) for _, d, raw in answered])
            return
        self._handed(answered)  # with no await before they are handed over (see drain)
        self._publish([(d.customer_id.encode(), raw)  # not those erased meanwhile
                       for (_, d, raw), k in zip(answered, kept, strict=True) if k])  # fmt: skip

    @staticmethod
    def _handed(answered: list[Decided]) -> None:
        for request, _, _ in answered:
            request.handed = True

    def _publish_checked(self, records: list[tuple[bytes, bytes]]) -> None:
        """Publish decisions whose callers were answered but whose write failed (it may
        or may not have run) once Redis says their customers are not erased, as
        fallbacks are (:mod:`streams.api.fallback_outbox`); the check records them."""
        for key, raw in records:
            self._fallbacks.add(key.decode(), raw, shown=True)

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

    def publish_soon(self, decision: NextBestOffer) -> None:
        """Emit a decision taken outside a batch (a fallback), without waiting, once
        Redis says its customer is not erased (see :mod:`streams.api.fallback_outbox`)."""
        self._fallbacks.add(decision.customer_id, encode_decision(decision))

    async def _record_fallbacks(self, waiting: Sequence[tuple[str, bytes]]) -> list[bool]:
        """Store the fallbacks' decisions, so that their outcomes find them (decisions
        with no model's features, which teach nothing), with the offers they showed (the
        cool-downs and caps of the customer's next decisions count them), and say whose
        customers are erased: the store refuses to record their decisions. A customer
        whose keys fail the write is not taken for erased."""
        decisions = [decode_next_best_offer(value) for _, value in waiting]
        records = [
            decision_record(d, value) for d, (_, value) in zip(decisions, waiting, strict=True)
        ]
        faults: dict[str, Exception] = {}
        shown = offers_shown(decisions)  # shown already: no ceiling holds them back
        kept = await self._store.decisions.record(records, shown, faults=faults)
        return [
            not stored and customer_id not in faults
            for (customer_id, _), stored in zip(waiting, kept, strict=True)
        ]

    def _track(self, task: asyncio.Task[None], batch: list[OfferRequest]) -> None:
        self._running[task] = batch
        task.add_done_callback(self._running.pop)

    def _publish(self, records: list[tuple[bytes, bytes]]) -> None:
        """Emit decisions that were answered; the answers do not wait for delivery."""
        self._delivery.send(records)

    async def drain(self, within_s: float | None = None) -> bool:
        """Wait for the batches under way and their publishing (at shutdown), for
        ``within_s`` at most (None: as long as it takes); whether all of it ended (not:
        Redis or Kafka slow or away; Kafka's producer would wait 40 s per batch). What
        was shown and is not published by then is given up and counted in
        ``moments_publish_failures_total``; nothing of it is cancelled uncounted."""
        loop = asyncio.get_running_loop()
        until = None if within_s is None else loop.time() + within_s
        self._delivery.stop()  # decisions Kafka has not taken are tried once more, no more

        def left() -> float | None:
            return None if until is None else max(until - loop.time(), 0.0)

        ended = True
        if self._running:  # waited for, not cancelled by the wait running out
            _, late = await asyncio.wait(list(self._running), timeout=left())
            if late:  # what they showed and did not hand over is given up, counted
                ended = False
                shown = sum(shown_not_handed(self._running.get(t, [])) for t in late)
                for task in late:
                    task.cancel()
                if shown:
                    self._publish_failed(shown)
                log.warning("%d batches of recommendations were still under way %g s after "
                            "the API began to stop; %d decisions they had answered are not "
                            "published (counted in moments_publish_failures_total)",
                            len(late), within_s, shown)  # fmt: skip
        if not await self._fallbacks.drain(within_s=left()):
            ended = False
        try:
            async with asyncio.timeout(left()):
                await self._publisher.drain()
        except TimeoutError:
            given_up = self._publisher.give_up("the API stopped before Kafka acknowledged")
            log.warning("%d publications of decisions were still on their way to Kafka %g s "
                        "after the API began to stop; given up (counted in "
                        "moments_publish_failures_total)", given_up, within_s)  # fmt: skip
            ended = False
        for _ in range(3):  # the deliveries given up hear of it (a callback or two away)
            await asyncio.sleep(0)
        self._delivery.say_given_up()
        return ended
