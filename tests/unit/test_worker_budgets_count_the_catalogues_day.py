"""The worker's offer budgets in a catalogue whose timezone is on another date than UTC:
a batch reads the counts of the catalogue's day and screens its decisions with them.

A business in Pago Pago (-11 h) whose voucher is spent for its day (22:00 on the 22nd
there, 09:00 on the 23rd UTC) must not be offered the voucher again by the worker: the
counts it read are that day's, not UTC's next day's (none yet).
"""

from __future__ import annotations

from datetime import date

from agents.catalogue_holder import CatalogueHolder
from agents.contact_policy import ContactPolicy
from agents.control_group import ControlGroup
from agents.offer_rules import RuleBasedOfferPolicy
from schemas import ContactRules, Offer, OfferCatalogue
from tests.unit.test_touchpoint_handler import KNOWN, NOW, RecordingStore, click, handler, records

VOUCHER = Offer(offer_id="voucher", title="Voucher", channels=["web"], value=20.0, priority=5.0,
                daily_limit=3)  # fmt: skip
TIPS = Offer(offer_id="tips", title="Tips", channels=["web"])
LOCAL_DAY = date(2026, 11, 22)  # NOW is 09:00 UTC on the 23rd: 22:00 on the 22nd there
PAGO_PAGO = OfferCatalogue(version="pp", offers=[VOUCHER, TIPS], default_offers=["tips"],
                           contact_policy=ContactRules(timezone="Pacific/Pago_Pago"))  # fmt: skip


class DayBudgets:
    """The store's budgets, kept per day: ``counts`` are the local day's; others none."""

    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts
        self.days_read: list[date] = []

    async def spent(self, day: date, unreadable: set[str] | None = None) -> dict[str, int]:
        self.days_read.append(day)
        return dict(self.counts) if day == LOCAL_DAY else {}


async def test_a_budget_spent_on_the_catalogues_day_is_not_offered_by_the_worker() -> None:
    assert NOW.date() == date(2026, 11, 23) and NOW.hour == 9
    store = RecordingStore(features={"cust-1": KNOWN})
    store.budgets = DayBudgets({"voucher": 3})  # type: ignore[attr-defined]
    policy = RuleBasedOfferPolicy(CatalogueHolder(PAGO_PAGO), ContactPolicy(ControlGroup("t", 0.0)))
    result = await handler(store, policy).handle(records(click("v-1")))
    [decision] = result.decisions
    assert [o.offer_id for o in decision.offers] == ["tips"]
    assert "suppressed:budget:voucher" in decision.reasons
    assert result.budgets is not None and result.budgets.day == LOCAL_DAY
    assert result.budgets.spent == {"voucher": 3}
    assert store.budgets.days_read == [LOCAL_DAY]  # type: ignore[attr-defined]
