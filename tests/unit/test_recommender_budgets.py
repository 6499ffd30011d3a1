"""A decision over a daily offer budget (other processes spent its last units since the
batch read the counts) is refused where the counts are kept: it is not recorded or
published, and its request is decided again from a new read, which shows the budget
spent.

The store here is :class:`tests.unit.test_recommender_overlap.SlowStore`, a test double
whose budgets count as ``take.lua`` does; the script itself is checked on real Redis in
``tests/integration/test_offer_budgets.py``.
"""

from __future__ import annotations

import asyncio
from datetime import date

from schemas import NextBestOffer
from streams.api.batch_decisions import DecisionCounters
from tests.unit.test_recommender_ceilings import publishing
from tests.unit.test_recommender_overlap import (
    BUDGETS,
    KNOWN,
    SlowStore,
    _Budgets,
    offer_ids,
    recommender,
)


class SpentElsewhere(_Budgets):
    """Budgets another process spends a unit of the voucher from, once the first
    ``after_reads`` reads have replied."""

    def __init__(self, store: SlowStore, spent: dict[str, int], after_reads: int) -> None:
        super().__init__(store, spent)
        self._reads_left = after_reads

    async def spent(self, day: date, unreadable: set[str] | None = None) -> dict[str, int]:
        counts = await super().spent(day)
        self._reads_left -= 1
        if self._reads_left == 0:
            self.counts["voucher"] += 1
        return counts


async def test_a_decision_over_a_budget_spent_elsewhere_is_decided_again() -> None:
    store = SlowStore({"c1": KNOWN}, spent={"voucher": 4})  # one of five left...
    store.budgets = SpentElsewhere(store, {"voucher": 4}, after_reads=1)  # ...spent meanwhile
    rec, sent = publishing(store)
    refusals: list[int] = []
    rec._decisions._counters = DecisionCounters(budgets_refused=refusals.append)
    answer = await rec.recommend("c1", "web", 3)
    await rec.drain()
    assert store.reads == [["c1"], ["c1"]]  # read again
    assert store.writes == [["c1"]]  # only the second decision is recorded
    assert isinstance(answer, NextBestOffer) and "voucher" not in offer_ids(answer)
    assert "suppressed:budget:voucher" in answer.reasons
    assert sent.sent == [answer.decision_id]  # the refused one is never published
    assert refusals == [1]
    assert store.budgets.counts["voucher"] == 5  # the other process's unit, no more
    assert await store.budgets.spent(date.today()) == {"voucher": 5}


async def test_within_the_budget_a_decision_is_counted_once_and_made() -> None:
    store = SlowStore({"c1": KNOWN}, spent={"voucher": 4})
    rec, sent = publishing(store)
    answer = await rec.recommend("c1", "web", 3)
    await rec.drain()
    assert isinstance(answer, NextBestOffer) and "voucher" in offer_ids(answer)
    assert store.budgets.counts["voucher"] == 5 and sent.sent == [answer.decision_id]
    assert store.reads == [["c1"]]


async def test_one_process_counts_its_own_spending_a_read_replied_without() -> None:
    """Batch B read the counts before batch A's count was sent, and its reply came just
    before that count's: A let go of its held spending before B added it up, so B decided
    the last voucher again, and was refused by its own process's count."""
    store = SlowStore({"a": KNOWN, "b": KNOWN}, spent={"voucher": 4})  # one of five left
    store.read_s, store.write_s = 0.010, 0.001  # A's count replies right after B's read
    rec = recommender(store, BUDGETS)
    refusals: list[int] = []
    rec._decisions._counters = DecisionCounters(budgets_refused=refusals.append)
    first = asyncio.create_task(rec.recommend("a", "web", 3))
    await asyncio.sleep(0.005)  # B's read goes while A's is out
    b = await rec.recommend("b", "web", 3)
    a = await first
    await rec.drain()
    assert a is not None and b is not None
    assert offer_ids(a) == ["voucher", "tips"] and "voucher" not in offer_ids(b)
    assert refusals == [] and store.reads == [["a"], ["b"]]  # decided once each
    assert store.budgets.counts["voucher"] == 5
