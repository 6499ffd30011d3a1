"""What deciding recommendations counts
(streams/api/batch_decisions.py DecisionCounters)."""

from __future__ import annotations

from agents.offer_budget import BudgetLedger
from schemas import NextBestOffer
from streams.api.batch_decisions import DecisionCounters
from tests.unit.test_recommender_ceilings import publishing
from tests.unit.test_recommender_overlap import KNOWN, SlowStore


async def test_a_contact_refused_over_a_ceiling_is_counted_as_such_not_as_a_budget() -> None:
    store = SlowStore({"c1": KNOWN}, spent={"voucher": 0})
    store.refuse["c1"] = 1
    rec, _ = publishing(store)
    contacts: list[int] = []
    budgets: list[int] = []
    rec._decisions._counters = DecisionCounters(contacts_refused=contacts.append,
                                                budgets_refused=budgets.append)  # fmt: skip
    answer = await rec.recommend("c1", "web", 3)
    await rec.drain()
    assert isinstance(answer, NextBestOffer) and answer.offers
    assert contacts == [1] and budgets == []


async def test_the_daily_budgets_read_are_handed_to_the_metrics() -> None:
    store = SlowStore({"c1": KNOWN}, spent={"voucher": 0})
    rec, _ = publishing(store)
    counted: list[BudgetLedger] = []
    rec._decisions._counters = DecisionCounters(budgets_counted=counted.append)
    await rec.recommend("c1", "web", 3)
    await rec.drain()
    assert len(counted) == 1 and "voucher" in counted[0].limits


async def test_each_decision_refused_over_a_budget_is_counted() -> None:
    import asyncio
    from datetime import date

    from tests.unit.test_recommender_overlap import BUDGETS, _Budgets, recommender

    class SpentOutElsewhere(_Budgets):
        """Another process spends the voucher's last units once the first read replied."""

        async def spent(self, day: date, unreadable: set[str] | None = None) -> dict[str, int]:
            counts = await super().spent(day)
            self.counts["voucher"] = 5  # BUDGETS' daily limit
            return counts

    store = SlowStore({"a": KNOWN, "b": KNOWN}, spent={"voucher": 0})
    store.budgets = SpentOutElsewhere(store, {"voucher": 0})
    rec = recommender(store, BUDGETS)
    refusals: list[int] = []
    batches: list[int] = []
    rec._decisions._counters = DecisionCounters(budgets_refused=refusals.append,
                                                batch_decided=batches.append)  # fmt: skip
    await asyncio.gather(rec.recommend("a", "web", 3), rec.recommend("b", "web", 3))
    await rec.drain()
    assert batches == [2]  # one batch of both
    assert refusals == [2]
