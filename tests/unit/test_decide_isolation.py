"""A batch whose deciding fails past one touchpoint's (here the alerts' hold-out group,
asked after every touchpoint is decided, fails for one customer) is decided again
customer by customer: that customer's touchpoints are dead-lettered, naming the error,
and every other customer's decisions and alerts are in the batch, once. Before, the
whole batch (up to 200 records, any customers) failed three times and was dead-lettered
undecided, and a re-drive of its letters failed again.
"""

from __future__ import annotations

from datetime import date

import pytest

from agents.catalogue_holder import CatalogueHolder
from agents.contact_policy import ContactPolicy
from agents.control_group import ControlGroup
from agents.letters import SourceRecord
from agents.offer_rules import RuleBasedOfferPolicy
from feature_store import StoreUnavailable
from schemas import Offer, OfferCatalogue, TouchpointEvent, encode_touchpoint
from tests.unit.test_touchpoint_handler import KNOWN, RecordingStore, click, handler

CUSTOMERS = ["cust-1", "cust-2", "cust-3"]


class BrokenHoldout:
    """The alerts' hold-out group, failing with ``error`` for ``broken`` customers."""

    def __init__(self, broken: str, error: Exception) -> None:
        self.broken, self.error = broken, error

    def contains(self, customer_id: str) -> bool:
        if customer_id == self.broken:
            raise self.error
        return False


class NoneSpent:
    """The store's budgets: nothing spent yet today."""

    async def spent(self, day: date, unreadable: set[str] | None = None) -> dict[str, int]:
        return {}


def batch_of(*customers: str, page: str = "/account/cancel") -> list[SourceRecord]:
    """One click on ``page`` per customer, each keyed by its customer."""
    return [
        SourceRecord("touchpoints", 0, n, customer.encode(),
                     encode_touchpoint(click(f"e-{customer}", page, customer)))
        for n, customer in enumerate(customers)
    ]  # fmt: skip


async def test_one_customer_whose_deciding_fails_is_dead_lettered_and_the_others_decided(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = RecordingStore(features=dict.fromkeys(CUSTOMERS, KNOWN))
    holdout = BrokenHoldout("cust-2", ValueError("year 0 is out of range"))
    batch = batch_of(*CUSTOMERS)
    result = await handler(store, holdout=holdout).handle(batch)
    assert [(d.record, d.error) for d in result.dead_letters] == [
        (batch[1], "decision failed: ValueError: year 0 is out of range")
    ]
    assert result.results == [("web_click", "ok"), ("web_click", "failed"), ("web_click", "ok")]
    assert [d.trigger_event_id for d in result.decisions] == ["e-cust-1", "e-cust-3"]
    assert [(i.customer_id, i.kind) for i in result.interventions] == [
        ("cust-1", "save_desk"), ("cust-3", "save_desk")
    ]  # fmt: skip
    assert {f.customer_id for f in result.risk_facts} <= {"cust-1", "cust-3"}
    assert set(result.timezones) == {"cust-1", "cust-3"}
    assert len(result.moments) == 2
    assert store.applied == ["e-cust-1", "e-cust-2", "e-cust-3"]  # their features updated
    assert "1 of 3 customers of a batch could not be decided (ValueError)" in caplog.text
    assert "cust-" not in caplog.text


async def test_a_customer_whose_deciding_fails_spends_nothing_of_the_budgets() -> None:
    """Decided one by one, each customer counts what those before spent; the one whose
    deciding failed spent nothing (their offer is not sent)."""
    voucher = Offer(offer_id="voucher", title="V", channels=["web"], value=20.0, priority=5.0,
                    daily_limit=2)  # fmt: skip
    tips = Offer(offer_id="tips", title="T", channels=["web"])
    catalogue = OfferCatalogue(version="b", offers=[voucher, tips], default_offers=["tips"])
    policy = RuleBasedOfferPolicy(CatalogueHolder(catalogue), ContactPolicy(ControlGroup("t", 0)))
    store = RecordingStore(features=dict.fromkeys([*CUSTOMERS, "cust-4"], KNOWN))
    store.budgets = NoneSpent()  # type: ignore[attr-defined]
    holdout = BrokenHoldout("cust-1", RuntimeError("broke"))
    result = await handler(store, policy, holdout=holdout).handle(batch_of(*CUSTOMERS, "cust-4"))
    offered = {d.customer_id: [o.offer_id for o in d.offers] for d in result.decisions}
    assert set(offered) == {"cust-2", "cust-3", "cust-4"}
    assert [c for c, offers in offered.items() if "voucher" in offers] == ["cust-2", "cust-3"]
    assert result.budgets is not None and result.budgets.spent == {"voucher": 2}
    assert result.budgets.day == date(2026, 11, 23)


async def test_an_outage_while_deciding_is_raised_for_the_batch_to_wait() -> None:
    """Redis or Kafka away is no bad record: the batch waits and is tried again whole."""
    store = RecordingStore(features=dict.fromkeys(CUSTOMERS, KNOWN))
    holdout = BrokenHoldout("cust-2", StoreUnavailable("connection lost"))
    with pytest.raises(StoreUnavailable):
        await handler(store, holdout=holdout).handle(batch_of(*CUSTOMERS))


async def test_a_batch_decided_at_once_is_not_decided_again() -> None:
    store = RecordingStore(features=dict.fromkeys(CUSTOMERS, KNOWN))
    result = await handler(store).handle(batch_of(*CUSTOMERS))
    assert result.dead_letters == []
    assert [d.customer_id for d in result.decisions] == CUSTOMERS
    assert len(result.interventions) == 3


async def test_a_touchpoint_whose_moment_cannot_be_told_is_dead_lettered_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Telling whether a touchpoint is decided on fails for one record: it alone is set
    aside, before anything is read for the batch's decisions."""
    from agents import decision_plan

    def worth_watching(event: TouchpointEvent) -> bool:
        if event.customer_id == "cust-2":
            raise OverflowError("date value out of range")
        return original(event)

    original = decision_plan.worth_watching
    monkeypatch.setattr(decision_plan, "worth_watching", worth_watching)
    store = RecordingStore(features=dict.fromkeys(CUSTOMERS, KNOWN))
    batch = batch_of(*CUSTOMERS)
    result = await handler(store).handle(batch)
    assert [(d.record, d.error) for d in result.dead_letters] == [
        (batch[1], "decision failed: OverflowError: date value out of range")
    ]
    assert result.results == [("web_click", "ok"), ("web_click", "failed"), ("web_click", "ok")]
    assert [d.customer_id for d in result.decisions] == ["cust-1", "cust-3"]
    assert store.reads == [["cust-1", "cust-3"]]
