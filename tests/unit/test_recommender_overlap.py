"""Recommender batches that overlap: a request that arrives while an earlier batch waits
on Redis starts a batch of its own, which may read the contacts and the budget counts
before the earlier batch has stored its decisions. Decisions of one process count those
of its other batches all the same (``streams/api/inflight.py``), and only while what
they read does not show them.

The store here is :class:`SlowStore`, a test double, not Redis. Like Redis on one
connection, it runs the calls in the order they are sent (a write shows in every read
sent after it) and replies in that order; each call takes a while. The Recommender
against real Redis is tested in ``tests/integration/test_recommender.py``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import pytest

from agents.catalogue_holder import CatalogueHolder
from agents.contact_ceilings import NO_CAP
from agents.contact_ledger import contacted
from agents.contact_policy import FIRST_CONTACT, ContactPolicy
from agents.control_group import ControlGroup
from agents.offer_rules import RuleBasedOfferPolicy
from feature_store import (
    BudgetSpend,
    ContactCeilings,
    CustomerFeatures,
    Fact,
    StoreFull,
    StoreUnavailable,
)
from feature_store.records import DecisionRecord
from schemas import (
    ContactRules,
    NextBestOffer,
    Offer,
    OfferCatalogue,
    OfferScore,
    decode_next_best_offer,
)
from streams.api.batch_decisions import DecisionCounters
from streams.api.publisher import KeyedPublisher
from streams.api.recommender import Recommender
from tests.unit.test_publisher_handover import Batch

READ_S = 0.01
WRITE_S = 0.03

GUIDE = Offer(offer_id="guide", title="Guide", channels=["email", "call"])
VOUCHER = Offer(offer_id="voucher", title="Voucher", channels=["web", "call"], value=20.0,
                priority=5.0, daily_limit=5)  # fmt: skip
TIPS = Offer(offer_id="tips", title="Tips", channels=["web"])
RULES = ContactRules(daily_caps={"email": 1, "call": 2})
CONTACTS = OfferCatalogue(version="contacts", offers=[GUIDE], contact_policy=RULES)
BUDGETS = OfferCatalogue(version="budgets", offers=[GUIDE, VOUCHER, TIPS], contact_policy=RULES)
KNOWN = CustomerFeatures(events=5, purchases=1, spend=50.0, value=50.0, segment="growth")


class SlowStore:
    """Test double for the FeatureStore calls the Recommender makes; not Redis.

    Reads answer what the store holds when they are sent; writes change it when they are
    sent. Each call replies ``read_s`` or ``write_s`` after it was sent, but not before
    the calls sent earlier have replied; writes then raise ``write_error`` if given.
    Contacts are applied as :func:`contacted` mirrors the shown facts; the budget counts
    are today's.
    """

    def __init__(
        self,
        features: dict[str, CustomerFeatures],
        spent: dict[str, int] | None = None,
        write_error: Exception | None = None,
    ) -> None:
        self.features = dict(features)
        self.read_s = READ_S
        self.write_s = WRITE_S
        self.take_s: float | None = None  # the budget count's reply (None: write_s)
        self.write_error = write_error
        self.reads: list[list[str]] = []
        self.zones_read: list[str] = []  # the home timezone each read was given
        self.writes: list[list[str]] = []  # the customers of each write, as sent
        self.ceilings: list[list[ContactCeilings | None]] = []  # its contacts' ceilings
        # customer -> how many of their next decisions with ceilings to refuse (as the
        # store does when another process's contact took a cap to its limit meanwhile)
        self.refuse: Counter[str] = Counter()
        self.refused_ids: list[str] = []  # the decisions refused so
        self.decisions = _Decisions(self)
        self.budgets = _Budgets(self, spent or {})
        self._last_reply: asyncio.Future[None] | None = None

    async def erased(self, customer_ids: Sequence[str]) -> list[bool]:
        """Who is erased: a read, answered even while writes raise ``write_error``."""
        await self.reply(self.read_s)
        return [customer_id.startswith("erased") for customer_id in customer_ids]

    async def reply(self, seconds: float, error: Exception | None = None) -> None:
        """Wait ``seconds``, and for the replies to the calls sent before."""
        earlier, self._last_reply = self._last_reply, asyncio.get_running_loop().create_future()
        mine = self._last_reply
        try:
            await asyncio.sleep(seconds)
            if earlier is not None:
                await earlier
        finally:
            mine.set_result(None)
        if error is not None:
            raise error

    async def read_for_decisions(
        self,
        customer_ids: Sequence[str],
        faults: dict[str, Exception] | None = None,
        home_timezone: str = "UTC",
    ) -> list[tuple[bool, CustomerFeatures | None]]:
        self.reads.append(list(customer_ids))
        self.zones_read.append(home_timezone)
        views = [(False, self.features.get(c)) for c in customer_ids]
        await self.reply(self.read_s)
        return views


class _Decisions:
    def __init__(self, store: SlowStore) -> None:
        self._store = store

    async def record(
        self,
        records: Sequence[DecisionRecord],
        shown: Sequence[Fact],
        faults: dict[str, Exception] | None = None,
        refused: set[str] | None = None,
        outbox: Sequence[Any] = (),
        outbox_heard: Callable[[list[Any]], None] | None = None,
    ) -> list[bool]:
        """As the store records them; the outbox's commands done by their maker."""
        store = self._store
        store.writes.append([r.customer_id for r in records])
        store.ceilings.append([f.ceilings for f in shown])
        kept = []
        for record in records:
            decision = decode_next_best_offer(record.context)
            guarded = any(f.decision_id == record.decision_id and f.ceilings for f in shown)
            if guarded and store.refuse[decision.customer_id] > 0:  # as if over a ceiling
                store.refuse[decision.customer_id] -= 1
                assert refused is not None
                refused.add(record.decision_id)
                store.refused_ids.append(record.decision_id)
                kept.append(False)
                continue
            if decision.offers and any(f.decision_id == record.decision_id for f in shown):
                # as the store: only the offers recorded as shown count as contacts
                before = store.features.get(decision.customer_id) or FIRST_CONTACT
                store.features[decision.customer_id] = contacted(before, decision)
            kept.append(True)
        await store.reply(store.write_s, store.write_error)
        return kept


class _Budgets:
    def __init__(self, store: SlowStore, spent: dict[str, int]) -> None:
        self._store = store
        self.counts = Counter(spent)
        self.counted: set[str] = set()  # the decisions whose spending is counted
        self.taken_back: set[str] = set()  # marked as unspend.lua marks them: never counted

    async def spent(self, day: date, unreadable: set[str] | None = None) -> dict[str, int]:
        counts = dict(self.counts)
        await self._store.reply(self._store.read_s)
        return counts

    async def add(self, spends: Sequence[BudgetSpend]) -> int:
        for spend in spends:
            if spend.decision_id in self.counted | self.taken_back:  # as spend.lua skips them
                continue
            self.counts.update(spend.offer_ids)
            self.counted.add(spend.decision_id)
        await self._store.reply(self._store.write_s, self._store.write_error)
        return len(spends)

    async def take(self, spends: Sequence[BudgetSpend], limits: Mapping[str, int]) -> set[str]:
        """In order, within the limits, as take.lua counts them."""
        refused = set()
        for spend in spends:
            if spend.decision_id in self.taken_back:
                refused.add(spend.decision_id)
            elif spend.decision_id not in self.counted:
                if any(self.counts[o] >= limits.get(o, NO_CAP) for o in spend.offer_ids):
                    refused.add(spend.decision_id)
                    continue
                self.counts.update(spend.offer_ids)
                self.counted.add(spend.decision_id)
        took = self._store.write_s if self._store.take_s is None else self._store.take_s
        await self._store.reply(took, self._store.write_error)
        return refused

    async def take_back(self, spends: Sequence[BudgetSpend], *, for_good: bool) -> int:
        """Once per decision counted, as unspend.lua takes it back (for good: a decision
        the API did not show is never shown)."""
        assert for_good
        back = [s for s in spends if s.decision_id in self.counted]
        for spend in back:
            self.counts.subtract(spend.offer_ids)
            self.counted.discard(spend.decision_id)
        self.taken_back.update(s.decision_id for s in spends)
        await self._store.reply(self._store.read_s)
        return len(back)


class Published:
    """Test double for KeyedPublisher: delivers at once."""

    def publish(self, topic: str, records: Sequence[Any]) -> asyncio.Future[None]:
        delivered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        delivered.set_result(None)
        return delivered

    async def drain(self) -> None:
        pass


def recommender(store: SlowStore, catalogue: OfferCatalogue) -> Recommender:
    policy = RuleBasedOfferPolicy(
        CatalogueHolder(catalogue), ContactPolicy(ControlGroup("overlap", 0.0))
    )
    return Recommender(store, policy, Published(), "nbo", budget_s=5.0)  # type: ignore[arg-type]


async def until(condition: Callable[[], object]) -> None:
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.0005)
    raise AssertionError("it never happened")


async def overlapping(
    rec: Recommender,
    first: tuple[str, str],
    second: tuple[str, str],
    after: Callable[[], object],
) -> list[NextBestOffer | None]:
    """Ask for ``first`` (customer id, channel), then for ``second`` as soon as ``after``
    holds: two batches that overlap."""
    asked = asyncio.create_task(rec.recommend(*first, 3))
    await until(after)
    return await asyncio.gather(asked, rec.recommend(*second, 3))


def offer_ids(decision: NextBestOffer | None) -> list[str]:
    assert decision is not None
    return [o.offer_id for o in decision.offers]


def held(rec: Recommender) -> set[str]:
    """The customers whose decisions the Recommender holds as not stored yet."""
    return {c for write in rec._decisions._inflight._writes for c in write.shown}


async def test_a_request_overlapping_one_for_the_same_customer_counts_its_email() -> None:
    store = SlowStore({"c1": KNOWN})
    rec = recommender(store, CONTACTS)
    # the second request comes while the first batch is reading (0.5 ms later, say)
    first, second = await overlapping(rec, ("c1", "email"), ("c1", "email"), lambda: store.reads)
    assert store.reads == [["c1"], ["c1"]]  # two batches, each read before any write
    assert offer_ids(first) == ["guide"]
    assert second is not None and offer_ids(second) == []
    assert "suppressed:fatigue:email:day" in second.reasons
    assert store.features["c1"].contact.shown_today == {"email": 1}  # the daily cap held


async def test_two_customers_overlapping_do_not_both_get_the_last_of_a_budget() -> None:
    store = SlowStore({"a": KNOWN, "b": KNOWN}, spent={"voucher": 4})  # one left of 5
    rec = recommender(store, BUDGETS)
    first, second = await overlapping(rec, ("a", "web"), ("b", "web"), lambda: store.reads)
    assert store.reads == [["a"], ["b"]]
    assert offer_ids(first) == ["voucher", "tips"]
    assert second is not None and offer_ids(second) == ["tips"]
    assert "suppressed:budget:voucher" in second.reasons
    assert store.budgets.counts["voucher"] == 5  # the budget held


async def test_a_write_that_ends_after_a_read_replied_counts_until_that_batch_decided() -> None:
    # the first batch's write goes after the second batch's (slow) read and replies just
    # after it, so it is over before the second batch decides: it must count all the same
    store = SlowStore({"c1": KNOWN}, spent={})  # a catalogue with budgets: two reads
    rec = recommender(store, BUDGETS)

    def first_read_sent() -> bool:
        if store.reads:
            store.read_s = 5 * READ_S  # the second batch's read
        return bool(store.reads)

    first, second = await overlapping(rec, ("c1", "email"), ("c1", "email"), first_read_sent)
    assert offer_ids(first) == ["guide"]
    assert second is not None and offer_ids(second) == []
    assert "suppressed:fatigue:email:day" in second.reasons
    assert store.features["c1"].contact.shown_today == {"email": 1}


async def test_a_write_stored_before_a_read_replied_counts_once() -> None:
    # the second batch reads after the first sent its write: what it reads shows the
    # first's contact and spending, which must not count twice
    store = SlowStore({"c1": KNOWN}, spent={"voucher": 3})  # two left of 5
    rec = recommender(store, BUDGETS)
    first, second = await overlapping(rec, ("c1", "call"), ("c1", "call"), lambda: store.writes)
    assert offer_ids(first) == offer_ids(second) == ["voucher", "guide"]  # a cap of 2 a day
    assert store.features["c1"].contact.shown_today == {"call": 2}
    assert store.budgets.counts["voucher"] == 5


@pytest.mark.parametrize("write_error", [None, StoreUnavailable("redis is gone")],
                         ids=["stored", "not_stored"])  # fmt: skip
async def test_decisions_are_held_only_until_their_batch_is_written(
    write_error: Exception | None,
) -> None:
    store = SlowStore({"a": KNOWN, "b": KNOWN}, spent={}, write_error=write_error)
    rec = recommender(store, BUDGETS)
    first = asyncio.create_task(rec.recommend("a", "web", 3))
    await until(lambda: store.writes)  # the first batch decided, and is being written
    assert held(rec) == {"a"}
    second = asyncio.create_task(rec.recommend("b", "web", 3))
    await asyncio.wait([first])  # answered once written (or not)
    assert "a" not in held(rec)
    await asyncio.wait([second])
    assert held(rec) == set() and len(rec._decisions._inflight) == 0  # no customer id left behind
    if write_error is None:
        assert offer_ids(first.result()) == offer_ids(second.result()) == ["voucher", "tips"]
    else:
        assert first.exception() is write_error and second.exception() is write_error
    await rec.drain()


async def test_spending_counted_before_its_record_replied_counts_once() -> None:
    """The first batch's budget spending is counted in Redis a round trip before its
    decisions are recorded; a read that replies between the two shows the count, and
    the spending is no longer held as unseen: the last unit is still offered."""
    store = SlowStore({"a": KNOWN, "b": KNOWN}, spent={"voucher": 3})  # two left of 5
    rec = recommender(store, BUDGETS)
    first, second = await overlapping(rec, ("a", "web"), ("b", "web"),
                                      lambda: store.budgets.counted)  # fmt: skip
    assert offer_ids(first) == offer_ids(second) == ["voucher", "tips"]
    assert store.budgets.counts["voucher"] == 5


class NeverAcknowledged:
    """A producer whose broker takes batches and never answers (away at shutdown)."""

    def __init__(self) -> None:
        self.handed: list[asyncio.Future[Any]] = []

    async def partitions_for(self, topic: str) -> set[int]:
        return {0}

    def create_batch(self) -> Any:
        return Batch()

    async def send_batch(self, batch: Any, topic: str, partition: int) -> asyncio.Future[Any]:
        self.handed.append(asyncio.get_running_loop().create_future())
        return self.handed[-1]


async def test_draining_at_shutdown_gives_up_after_its_time_and_counts_it() -> None:
    """A broker away held the API's stop for the producer's 40 s per batch: past the
    orchestrator's grace period, it was killed without closing Redis or its log."""
    policy = RuleBasedOfferPolicy(
        CatalogueHolder(CONTACTS), ContactPolicy(ControlGroup("overlap", 0.0))
    )
    producer, failed = NeverAcknowledged(), []
    publisher = KeyedPublisher(producer, linger_s=0.0)  # type: ignore[arg-type]
    rec = Recommender(SlowStore({"c1": KNOWN}), policy, publisher, "nbo", budget_s=1.0,
                      counters=DecisionCounters(publish_failed=failed.append))  # fmt: skip
    assert await rec.recommend("c1", "email", 3) is not None
    await until(lambda: producer.handed)  # handed over, never acknowledged
    started = asyncio.get_running_loop().time()
    assert await rec.drain(within_s=0.2) is False
    assert asyncio.get_running_loop().time() - started < 2
    await until(lambda: failed)
    assert failed == [1]  # given up: counted (moments_publish_failures_total)
    assert await rec.drain(within_s=0.2) is True  # nothing left to wait for


class GivingUp(Published):
    """Delivers at once, and counts what it was given (nothing waits to be given up)."""

    def __init__(self) -> None:
        self.published: list[Any] = []

    def publish(self, topic: str, records: Sequence[Any]) -> asyncio.Future[None]:
        self.published.extend(records)
        return super().publish(topic, records)

    def give_up(self, why: str) -> int:
        return 0


def stopping(store: SlowStore, budget_s: float = 0.05) -> tuple[Recommender, GivingUp, list[int]]:
    """A recommender (latency budget 50 ms unless told) about to stop: what it publishes,
    and the publish failures it counts."""
    policy = RuleBasedOfferPolicy(
        CatalogueHolder(CONTACTS), ContactPolicy(ControlGroup("overlap", 0.0))
    )
    failed: list[int] = []
    publisher = GivingUp()
    rec = Recommender(store, policy, publisher, "nbo", budget_s=budget_s,  # type: ignore[arg-type]
                      counters=DecisionCounters(publish_failed=failed.append))  # fmt: skip
    return rec, publisher, failed


async def test_a_decision_shown_while_stored_is_counted_when_the_drain_runs_out() -> None:
    """Redis slow to answer the write at shutdown: the caller was answered with the
    decision when the latency budget ran out (shown), and the drain ran out before the
    write replied. The batch was cancelled with it, neither published nor counted."""
    store = SlowStore({"c1": KNOWN})
    store.write_s = 5.0
    # a budget deciding fits in on a loaded machine (50 ms did not): it runs out in the write
    rec, publisher, failed = stopping(store, budget_s=1.0)
    decision = await rec.recommend("c1", "email", 3)
    assert decision is not None and decision.offers and not decision.fallback  # shown
    assert await rec.drain(within_s=0.3) is False
    assert failed == [1] and publisher.published == []  # given up, counted
    await asyncio.sleep(0.1)
    assert publisher.published == []  # not sent after it was counted


async def test_fallbacks_waiting_when_the_drain_runs_out_are_counted() -> None:
    """Redis away at shutdown: the outbox cannot tell who is erased. Its fallbacks are
    given up within the drain's time, and counted (the drain cancelled the outbox's own
    give-up when its time ran out first)."""
    store = SlowStore({})

    async def down(*args: Any, **kwargs: Any) -> list[bool]:
        raise StoreUnavailable("ConnectionError")

    store.decisions.record = down  # type: ignore[method-assign]
    policy = RuleBasedOfferPolicy(
        CatalogueHolder(CONTACTS), ContactPolicy(ControlGroup("overlap", 0.0))
    )
    failed: list[int] = []
    rec = Recommender(
        store, policy, GivingUp(), "nbo", counters=DecisionCounters(publish_failed=failed.append)
    )  # type: ignore[arg-type]
    fallback = rec.as_if_unknown("c1", "web", 3)
    rec.publish_soon(fallback)
    started = asyncio.get_running_loop().time()
    assert await rec.drain(within_s=0.5) is False
    assert asyncio.get_running_loop().time() - started < 1.5
    assert failed == [1]


async def test_a_shown_decision_recorded_apart_is_counted_if_the_drain_runs_out() -> None:
    """Shown when the budget ran out, then refused over a ceiling: it is recorded apart
    (it was shown), and the drain ran out during that write. It was marked handed over
    before the write, so it was neither published nor counted."""
    store = SlowStore({"c1": KNOWN})
    store.write_s = 0.15
    store.refuse["c1"] = 1
    rec, publisher, failed = stopping(store)
    decision = await rec.recommend("c1", "email", 3)
    assert decision is not None and decision.offers  # shown: the budget ran out meanwhile
    store.write_s = 5.0  # the write recording it apart is slow
    await until(lambda: len(store.writes) == 2)
    assert await rec.drain(within_s=0.2) is False
    assert failed == [1] and publisher.published == []


async def test_fallbacks_are_published_while_redis_is_full_but_still_says_who_is_erased() -> None:
    """A fallback waits until Redis says whether its customer is erased, which the write
    of its record said: with Redis full (noeviction) for longer than the fallbacks' hold,
    every fallback shown was given up, though Redis still answered reads."""
    store = SlowStore({}, write_error=StoreFull("OOM command not allowed"))
    rec, publisher, failed = stopping(store)
    for customer_id in ("c1", "erased-1"):
        rec.publish_soon(NextBestOffer(
            decision_id=f"d-{customer_id}", customer_id=customer_id, ts=datetime.now(UTC),
            channel="web", trigger_event_id=None, fallback=True,
            offers=[OfferScore(offer_id="tips", score=0.0, propensity=1.0)],
        ))  # fmt: skip
    await until(lambda: publisher.published)
    assert await rec.drain(within_s=2) is True
    published = [decode_next_best_offer(value).customer_id for _, value in publisher.published]
    assert published == ["c1"]  # not the erased customer's
    assert failed == []


async def test_a_customer_whose_fallback_is_given_up_unchecked_is_forgotten_once_found_erased() -> (
    None
):
    """Redis away longer than a fallback's decision waits: it is given up unchecked, and
    the customer kept by what forgets an erased one (the fallbacks' contacts) only until
    Redis says they are erased; then forgotten there, as when a decision's check finds so."""
    store = SlowStore({})
    down = True

    async def record(*args: Any, **kwargs: Any) -> list[bool]:
        raise StoreUnavailable("ConnectionError")

    async def erased(customer_ids: Sequence[str]) -> list[bool]:
        if down:
            raise StoreUnavailable("ConnectionError")
        return [c.startswith("erased") for c in customer_ids]

    store.decisions.record = record  # type: ignore[method-assign]
    store.erased = erased  # type: ignore[method-assign]
    policy = RuleBasedOfferPolicy(
        CatalogueHolder(CONTACTS), ContactPolicy(ControlGroup("overlap", 0.0))
    )
    rec = Recommender(store, policy, Published(), "nbo", fallback_hold_s=0.05)  # type: ignore[arg-type]
    forgotten: list[str] = []
    rec.also_forget.append(forgotten.append)
    for customer_id in ("c1", "erased-1"):
        rec.publish_soon(rec.as_if_unknown(customer_id, "web", 3))
    await asyncio.sleep(0.3)  # given up unchecked
    assert forgotten == []  # Redis cannot say: kept for the next fallbacks' caps
    down = False
    for _ in range(1000):  # Redis asked again within a few seconds
        if forgotten:
            break
        await asyncio.sleep(0.01)
    assert forgotten == ["erased-1"]
    assert await rec.drain(within_s=1) is True
