"""The API's offer budgets in a catalogue whose timezone is on another date than UTC:
the batch reads the counts of the catalogue's day, screens the offers with them, and
counts what it shows on that same day.

A business far from UTC (Kiritimati, +14 h, or Pago Pago, -11 h) whose voucher is
spent for its day must not be shown the voucher again (nor have its requests refused
at the store and decided again) just because UTC's date is another; the vouchers it
shows count on its day.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime

import msgspec

from agents.offer_budget import budget_day
from feature_store import BudgetSpend
from schemas import NextBestOffer, OfferCatalogue
from tests.unit.test_recommender_ceilings import publishing
from tests.unit.test_recommender_overlap import BUDGETS, KNOWN, SlowStore, _Budgets, offer_ids


def far_away() -> tuple[OfferCatalogue, date]:
    """The catalogue in a timezone whose date is not UTC's now (+14 h from 10:00 UTC,
    -11 h before), and its day."""
    now = datetime.now(UTC)
    zone = "Pacific/Kiritimati" if now.hour >= 10 else "Pacific/Pago_Pago"
    rules = msgspec.structs.replace(BUDGETS.contact_policy, timezone=zone)
    day = budget_day(now, zone)
    assert day != now.date()
    return msgspec.structs.replace(BUDGETS, contact_policy=rules), day


class DayBudgets(_Budgets):
    """Budgets kept per day, as the store keeps them: the counts are the catalogue's
    day's; any other day holds none. Records the days read and counted."""

    def __init__(self, store: SlowStore, spent: dict[str, int], day: date) -> None:
        super().__init__(store, spent)
        self.day = day
        self.days_read: list[date] = []
        self.days_counted: list[date] = []

    async def spent(self, day: date, unreadable: set[str] | None = None) -> dict[str, int]:
        self.days_read.append(day)
        counts = await super().spent(day)
        return counts if day == self.day else {}

    async def add(self, spends: Sequence[BudgetSpend]) -> int:
        self.days_counted += [s.day for s in spends]
        return await super().add(spends)

    async def take(self, spends: Sequence[BudgetSpend], limits: Mapping[str, int]) -> set[str]:
        self.days_counted += [s.day for s in spends]
        return await super().take(spends, limits)


async def test_a_budget_spent_on_the_catalogues_day_is_not_offered_again() -> None:
    catalogue, local_day = far_away()
    store = SlowStore({"c1": KNOWN}, spent={"voucher": 5})  # the voucher's 5 all shown
    store.budgets = DayBudgets(store, {"voucher": 5}, local_day)
    rec, _ = publishing(store, catalogue)
    answer = await rec.recommend("c1", "web", 3)
    await rec.drain()
    assert isinstance(answer, NextBestOffer) and "voucher" not in offer_ids(answer)
    assert "suppressed:budget:voucher" in answer.reasons
    assert store.reads == [["c1"]]  # screened out at once, not refused at the store
    assert store.budgets.days_read == [local_day]


async def test_the_vouchers_shown_count_on_the_catalogues_day() -> None:
    catalogue, local_day = far_away()
    store = SlowStore({"c1": KNOWN}, spent={"voucher": 1})
    store.budgets = DayBudgets(store, {"voucher": 1}, local_day)
    rec, _ = publishing(store, catalogue)
    answer = await rec.recommend("c1", "web", 3)
    await rec.drain()
    assert isinstance(answer, NextBestOffer) and "voucher" in offer_ids(answer)
    assert store.budgets.days_counted == [local_day]
    assert store.budgets.counts["voucher"] == 2


async def test_a_decision_shown_all_the_same_counts_on_the_catalogues_day_only() -> None:
    """Refused over a ceiling after its caller was shown it (the latency budget ran out),
    a decision is recorded again with its spending: on the catalogue's day, where it
    was counted already (once), not on another day's count."""
    catalogue, local_day = far_away()
    store = SlowStore({"c1": KNOWN}, spent={"voucher": 0})
    store.budgets = DayBudgets(store, {"voucher": 0}, local_day)
    store.refuse["c1"] = 1
    store.write_s = 0.2
    store.take_s = 0.001  # the budget counted: it may be shown
    rec, _ = publishing(store, catalogue)
    rec.budget_s = 0.05
    answer = await rec.recommend("c1", "web", 3)
    await rec.drain()
    assert isinstance(answer, NextBestOffer) and "voucher" in offer_ids(answer)
    assert store.writes == [["c1"], ["c1"]]  # recorded again, without ceilings
    assert store.budgets.days_counted and set(store.budgets.days_counted) == {local_day}
