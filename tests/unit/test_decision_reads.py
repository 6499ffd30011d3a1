"""A worker's batch reads its customers counting the catalogue's days for those no
touchpoint told their timezone (agents/decision_reads.py), as the store's check of
their contacts' caps counts them."""

from __future__ import annotations

from datetime import date
from typing import Any

from agents.decision_plan import DecisionPlan
from agents.decision_reads import read_for_decisions
from schemas import ContactRules, Offer, OfferCatalogue

TOKYO = OfferCatalogue(version="v", offers=[Offer(offer_id="tips", title="Tips", channels=["web"])],
                       contact_policy=ContactRules(timezone="Asia/Tokyo"))  # fmt: skip


class Recording:
    def __init__(self) -> None:
        self.zones: list[str] = []
        self.decisions = self

    async def read_views(self, customers: Any, faults: Any = None,
                         home_timezone: str = "UTC") -> list[Any]:  # fmt: skip
        self.zones.append(home_timezone)
        return []

    async def contexts(self, asked: Any, faults: Any = None) -> dict[str, Any]:
        return {}


async def test_the_batch_reads_its_customers_in_the_catalogues_timezone() -> None:
    store = Recording()
    plan = DecisionPlan([], set(), set(), {}, TOKYO, date(2026, 12, 6))
    await read_for_decisions(store, plan)  # type: ignore[arg-type]
    assert store.zones == ["Asia/Tokyo"]
