"""Live recommendations, decided in batches: requests that arrive together share one
Redis read, one Redis write and one Kafka batch.

Every request still gets a decision of its own (its own id, the customer's features as
read now, the contact policy, the model snapshot in use); only the round trips are
shared. A lone request goes at the next turn of the event loop; while batches are
being decided (under load), new requests wait up to ``gather_s`` for company, which
makes batches larger and each request cheaper. The latency budget runs from the first
request's arrival; how one batch is decided and stored within it, the daily offer
budgets and the contact ceilings, is :mod:`streams.api.batch_decisions`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Container, Sequence
from datetime import UTC, datetime

from agents.decision_records import decision_record, offers_shown
from agents.moments import request_moment
from agents.offer_budget import BudgetLedger
from agents.offer_policy import OfferPolicy
from feature_store import FeatureStore, StoreFull
from feature_store.features import withdrawals_only
from schemas import NextBestOffer, decode_next_best_offer, encode_decision
from streams.api.answers import OfferRequest, expire, shown_not_handed
from streams.api.batch_decisions import UNCOUNTED, BatchDecisions, DecisionCounters
from streams.api.decision_delivery import DecisionDelivery
from streams.api.decision_outbox import DecisionOutbox
from streams.api.fallback_outbox import FallbackOutbox
from streams.api.publisher import KeyedPublisher

log = logging.getLogger(__name__)
# Batches sending or awaiting their round trips at most: past it (Redis answering slower
# than requests come), a new batch is answered with fallbacks at once rather than queue
# reads Redis would serve after their callers were answered anyway.
MAX_BATCHES_IN_FLIGHT = 16


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
        counters: DecisionCounters = UNCOUNTED,
        outbox: DecisionOutbox | None = None,
        erased: Container[str] = frozenset(),
        fallback_hold_s: float = 60.0,
    ) -> None:
        """``outbox``: where the decisions recorded wait until Kafka acknowledged them
        (:mod:`streams.api.decision_outbox`); ``None``: nowhere but in memory.
        ``erased``: the customers the process knows erased lately, whose decisions
        answered before are not sent, nor sent again (:mod:`streams.api.decision_delivery`).
        ``fallback_hold_s``: how long a fallback's decision waits for Redis to say its
        customer is not erased (:mod:`streams.api.fallback_outbox`)."""
        self._store = store
        self._outbox = outbox
        self._policy = policy
        self._publisher = publisher
        self._topic = topic
        self._max_batch = max_batch
        self._gather_s = gather_s
        self.budget_s = budget_s  # the latency budget (an erased customer's answer reads
        # their kept withdrawals within it again)
        self._publish_failed = counters.publish_failed
        self._delivery = DecisionDelivery(
            publisher, topic, counters.publish_failed,
            settled=None if outbox is None else outbox.settled,
            erased=erased, withheld=counters.publish_erased,
        )  # fmt: skip
        self._waiting: list[OfferRequest] = []
        self._first_waiting_since = 0.0
        self._flush_scheduled = False
        self._running: dict[asyncio.Task[None], list[OfferRequest]] = {}  # batches under way
        self._deciding = 0  # batches being decided now
        # fallbacks are recorded and published once Redis says their customers are not erased
        self._fallbacks = FallbackOutbox(
            self._record_fallbacks,
            self._publish,
            counters.publish_failed,
            hold_s=fallback_hold_s,
            forget=None if outbox is None else outbox.release_records,
            found_erased=self._forget_erased,
            who_erased=store.erased,
        )
        # what else forgets a customer a fallback's check found erased (the fallbacks'
        # contacts): erased before this process heard of it, long ago or elsewhere; and
        # one whose fallback was given up unchecked, once Redis says they are erased (or
        # pushed out of those kept to ask of)
        self.also_forget: list[Callable[[str], None]] = []
        # deciding and storing each batch, publishing what was answered
        self._decisions = BatchDecisions(
            store, policy, self._publish, self._publish_checked, counters, outbox
        )

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

    async def for_erased(
        self, customer_id: str, channel: str, limit: int, asked_at: float | None = None
    ) -> NextBestOffer:
        """The answer for an erased customer (:meth:`as_if_unknown`), with the withdrawals
        their erasure kept, read from Redis within what is left of the latency budget
        from ``asked_at`` (loop time; default now). Raises :class:`TimeoutError` or
        :class:`feature_store.StoreUnavailable` when Redis cannot say in time (its caller
        gets a fallback, which offers nothing on email, sms and call)."""
        loop = asyncio.get_running_loop()
        start = loop.time() if asked_at is None else asked_at
        async with asyncio.timeout_at(start + self.budget_s):
            withdrawals = await self._store.withdrawals_kept(customer_id)
        return self.as_if_unknown(customer_id, channel, limit, withdrawals)

    def as_if_unknown(
        self, customer_id: str, channel: str, limit: int, withdrawals: Sequence[str] = ()
    ) -> NextBestOffer:
        """The answer for an erased customer: what someone Moments knows nothing of is
        offered, so that the answer does not tell that they were erased, but on the
        channels the customer had withdrawn from (``withdrawals``, kept by their erasure)
        nothing, as for a known customer (``suppressed:consent:<channel>``,
        ``suppressed:channel_avoided:email``). Nothing is kept, spent or sent about them,
        so none of the offers with a daily budget (shown, it would go uncounted, and the
        budget past its limit)."""
        catalogue = self._policy.catalogue.current
        limits = catalogue.daily_limits()
        now = datetime.now(UTC)
        timezone = catalogue.contact_policy.timezone
        spent_all = BudgetLedger.for_day(now, limits, limits, timezone=timezone) if limits else None
        moment = request_moment(customer_id, channel, limit)
        known = withdrawals_only(withdrawals)
        return self._policy.decide(moment, known, now, spent_all, catalogue)

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
        deadline = loop.call_at(due, self._expire, batch)
        task = loop.create_task(self._decide(batch, due))
        task.add_done_callback(lambda _: deadline.cancel())
        self._track(task, batch)

    def _expire(self, batch: list[OfferRequest]) -> None:
        """The batch's latency budget ran out: its decisions answered now are marked
        shown in the outbox (refused over a cap, they are recorded again, in a second
        write: a process killed before it leaves them for the sweeper to publish)."""
        shown = expire(batch)
        if shown and self._outbox is not None:
            self._outbox.shown(shown)

    async def _decide(self, batch: list[OfferRequest], due: float) -> None:
        self._deciding += 1
        try:
            await self._decisions.decide(batch, due)
        except Exception as exc:  # a fault of Moments' own: no caller is left waiting
            # by its kind alone: its message may quote what it failed on
            log.error("a batch of recommendations failed: %s", type(exc).__name__)
            for request in batch:
                if not request.answer.done():
                    request.answer.set_exception(exc)
        finally:
            self._deciding -= 1

    def _publish_checked(self, records: list[tuple[bytes, bytes]]) -> None:
        """Publish decisions whose callers were answered but whose write failed (it may
        or may not have run) once Redis says their customers are not erased, as
        fallbacks are (:mod:`streams.api.fallback_outbox`); the check records them."""
        for key, raw in records:
            self._fallbacks.add(key.decode(), raw, shown=True)

    def publish_soon(self, decision: NextBestOffer) -> None:
        """Emit a decision taken outside a batch (a fallback), without waiting, once
        Redis says its customer is not erased (see :mod:`streams.api.fallback_outbox`)."""
        self._fallbacks.add(decision.customer_id, encode_decision(decision))

    def _forget_erased(self, customer_id: str) -> None:
        for forget in self.also_forget:
            forget(customer_id)

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
        try:
            if self._outbox is None:
                kept = await self._store.decisions.record(records, shown, faults=faults)
            else:
                kept = await self._outbox.recording(
                    [(r.decision_id, r.context) for r in records],
                    lambda held, heard: self._store.decisions.record(
                        records, shown, faults=faults, outbox=held, outbox_heard=heard
                    ),
                )
        except StoreFull:
            # Redis full (or a replica) takes no record, but still says who is erased:
            # the others are published unrecorded (their outcomes find no decision, their
            # offers count in no cap), not given up once the fallbacks' hold runs out
            erased = await self._store.erased([customer_id for customer_id, _ in waiting])
        else:
            erased = [
                not stored and customer_id not in faults
                for (customer_id, _), stored in zip(waiting, kept, strict=True)
            ]
        if self._outbox is not None:  # not published: out of the outbox
            self._outbox.release(r.decision_id for r, gone in zip(records, erased, strict=True)
                                 if gone)  # fmt: skip
        return erased

    def _track(self, task: asyncio.Task[None], batch: list[OfferRequest]) -> None:
        self._running[task] = batch
        task.add_done_callback(self._running.pop)

    def _publish(self, records: list[tuple[bytes, bytes]], ids: list[str] | None = None) -> None:
        """Emit decisions that were answered (``ids``: their decision ids, when known);
        the answers do not wait for delivery."""
        if self._outbox is not None:  # those it could not keep are counted
            self._outbox.publishing(records, ids)
        self._delivery.send(records, ids)

    async def drain(self, within_s: float | None = None) -> bool:
        """Wait for the batches under way and their publishing (at shutdown), for
        ``within_s`` at most (None: as long as it takes); whether all of it ended (not:
        Redis or Kafka slow or away; Kafka's producer would wait until Kafka takes it). What
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
