"""Decisions this process took whose write to Redis has not finished: batches of
recommendations overlap, and each must count the contacts and budget spending of the
others that what it read does not show.

Redis replies in the order it ran the commands (one connection, or one pipeline per
round trip), so a read shows the writes all of whose calls replied before it did, and no
other. What it does not show: the writes still waiting for a reply when it replied, and
those of decisions taken after that. A batch's decisions are held from when they are
taken until their write has finished, well or not, and no longer: customer ids stay
here only while their batch is in flight. Its budget spending, counted a round trip
before the decisions are recorded, is held only until that count replied
(:meth:`InFlightDecisions.counted`); a read of the budgets takes what is held as its
reply comes (:meth:`InFlightDecisions.read_spent`), as a count replying just after it
must not take back from it what it does not show.

>>> import asyncio
>>> from datetime import UTC, datetime
>>> from schemas import OfferScore
>>> made = NextBestOffer(decision_id="d1", customer_id="c1", channel="email",
...     ts=datetime(2026, 12, 1, 9, tzinfo=UTC), trigger_event_id=None, model_version="m",
...     offers=[OfferScore(offer_id="voucher", score=1.0, propensity=1.0)])
>>> spending = [BudgetSpend(made.ts.date(), "d1", ("voucher",))]
>>> async def main() -> tuple[object, ...]:
...     held = InFlightDecisions()
...     writing = asyncio.create_task(held.store([made], spending, asyncio.sleep(0.01)))
...     unseen, _ = await held.read(asyncio.sleep(0))  # replies before the write does
...     unspent, counts = await held.read_spent(asyncio.sleep(0, {"voucher": 3}))
...     seen = (unseen.contacted("c1", None).contact.shown_today,
...             unspent.spent(made.ts.date(), counts), len(held))
...     await writing
...     return seen + (len(held),)
>>> asyncio.run(main())
({'email': 1}, {'voucher': 4}, 1, 0)
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TypeVar

from agents.contact_ledger import contacted
from agents.contact_policy import FIRST_CONTACT
from feature_store import BudgetSpend, CustomerFeatures
from schemas import NextBestOffer

T = TypeVar("T")


@dataclass(slots=True, eq=False)
class _Write:
    """One batch's write to Redis, as far as other batches' decisions are concerned."""

    number: int  # in the order the batches decided
    shown: dict[str, list[NextBestOffer]]  # customer id -> its decisions that showed offers
    spending: Sequence[BudgetSpend]  # what it adds to the daily offer budgets
    unanswered: int  # its calls to Redis that have not replied (yet)


class InFlightDecisions:
    """The writes of this process's batches that have not finished, in order."""

    def __init__(self) -> None:
        self._writes: list[_Write] = []
        self._taken = 0  # writes so far

    def __len__(self) -> int:
        return len(self._writes)

    async def read(self, reading: Awaitable[T]) -> tuple[Unseen, T]:
        """Await ``reading``, a read of Redis, and say what its reply does not show.
        Pass the store's coroutine itself, so that this looks as its reply comes."""
        result = await reading
        waiting = [w for w in self._writes if w.unanswered]
        return Unseen(self._writes, waiting, self._taken), result

    async def read_spent(self, reading: Awaitable[T]) -> tuple[UnseenSpending, T]:
        """Await ``reading``, a read of the daily budgets, and say what its reply does not
        show of this process's spending: what is held as it comes (pass the store's
        coroutine itself), and that of the decisions taken after it."""
        result = await reading
        held = tuple(spend for write in self._writes for spend in write.spending)
        return UnseenSpending(held, self._writes, self._taken), result

    async def store(
        self,
        decisions: Iterable[NextBestOffer],
        spending: Sequence[BudgetSpend],
        *calls: Awaitable[T],
    ) -> list[T]:
        """Await ``calls`` (the store's coroutines), which write ``decisions`` and
        ``spending`` to Redis, and give their results; until they are over, the batches
        deciding meanwhile count them, as far as what they read does not show them."""
        shown: dict[str, list[NextBestOffer]] = {}
        for decision in decisions:
            if decision.offers:
                shown.setdefault(decision.customer_id, []).append(decision)
        self._taken += 1
        write = _Write(self._taken, shown, spending, len(calls))
        self._writes.append(write)
        try:
            if len(calls) == 1:
                return [await self._answered(write, calls[0])]
            # in the same round trip
            return list(await asyncio.gather(*(self._answered(write, call) for call in calls)))
        finally:
            self._writes.remove(write)

    def counted(self, spending: Sequence[BudgetSpend]) -> None:
        """The write holding ``spending`` has had it counted in Redis (a step before its
        last call replied): reads that reply from now on show it, so it is no longer
        held (refused parts of it never count)."""
        for write in self._writes:
            if write.spending is spending:
                write.spending = ()

    def refused(self, decision_ids: set[str]) -> None:
        """These decisions were refused (over a daily budget) before their write went on:
        they will make no contact, so the batches deciding meanwhile no longer count them
        (they suppressed the customer's other offers for the rest of the round trip)."""
        if not decision_ids:
            return
        for write in self._writes:
            for customer, shown in list(write.shown.items()):
                kept = [d for d in shown if d.decision_id not in decision_ids]
                if kept:
                    write.shown[customer] = kept
                else:
                    del write.shown[customer]

    @staticmethod
    async def _answered(write: _Write, call: Awaitable[T]) -> T:
        result = await call
        write.unanswered -= 1
        return result


@dataclass(frozen=True, slots=True)
class Unseen:
    """What one read of Redis does not show of this process's decisions: the writes
    waiting for a reply when it replied (held here even if they finish meanwhile), and
    those of decisions taken after it."""

    _held: list[_Write]  # the writes in flight, as they change
    _waiting: list[_Write]
    _taken: int  # writes taken when it replied

    def _writes(self) -> Iterator[_Write]:
        yield from self._waiting
        yield from (w for w in self._held if w.number > self._taken)

    def contacted(
        self, customer_id: str, features: CustomerFeatures | None
    ) -> CustomerFeatures | None:
        """The customer's ``features`` as read, with the contacts that the read does not
        show (:func:`agents.contact_ledger.contacted`)."""
        for write in self._writes():
            for decision in write.shown.get(customer_id, ()):
                features = contacted(features or FIRST_CONTACT, decision)
        return features


@dataclass(frozen=True, slots=True)
class UnseenSpending:
    """What one read of the daily budgets does not show of this process's spending: what
    was held when it replied (taken then: the count of a write replying just after it
    lets go of its spending, which this read does not show), and the spending of the
    decisions taken after it."""

    _held_then: tuple[BudgetSpend, ...]
    _held: list[_Write]  # the writes in flight, as they change
    _taken: int  # writes taken when it replied

    def spent(self, day: date, counts: Mapping[str, int]) -> dict[str, int]:
        """The budget ``counts`` read for ``day``, with the spending that the read does
        not show."""
        spent = dict(counts)
        later = (s for w in self._held if w.number > self._taken for s in w.spending)
        for spend in itertools.chain(self._held_then, later):
            if spend.day == day:
                for offer_id in spend.offer_ids:
                    spent[offer_id] = spent.get(offer_id, 0) + 1
        return spent
