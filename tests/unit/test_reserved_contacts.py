"""ContactReservations: what a worker does with the contacts the store refuses before it
sends a batch. The store here is :class:`Refusing`, a test double that answers each
contact with the status a test queues for it; the store's own check is tested on real
Redis (``tests/integration/test_contact_ceilings.py``, with two workers)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime

import msgspec
import pytest
from redis.exceptions import ResponseError

from agents.batch_result import BatchResult
from agents.catalogue_holder import CatalogueHolder
from agents.contact_ceilings import CONTENDED, NO_CAP
from agents.contact_policy import ContactPolicy
from agents.control_group import ControlGroup
from agents.letters import SourceRecord
from agents.moments import DecisionMoment
from agents.offer_budget import BudgetLedger
from agents.offer_rules import RuleBasedOfferPolicy
from agents.reserved_contacts import MAX_ROUNDS, ContactReservations, Refusals
from feature_store import (
    ApplyStatus,
    BudgetSpend,
    CustomerFeatures,
    DecisionRecord,
    Fact,
    contact_id,
)
from feature_store.budgets import counted_id
from schemas import ContactRules, Intervention, Offer, OfferCatalogue, decode_next_best_offer
from schemas.risk import RiskExample
from tests.unit.logged import said_by

NOW = datetime(2026, 12, 2, 10, tzinfo=UTC)
TIPS = Offer(offer_id="tips", title="Tips", channels=["web"])
CATALOGUE = OfferCatalogue(version="v", offers=[TIPS],
                           contact_policy=ContactRules(daily_caps={"web": 2}))  # fmt: skip
POLICY = RuleBasedOfferPolicy(CatalogueHolder(CATALOGUE), ContactPolicy(ControlGroup("t", 0.0)))
KNOWN = CustomerFeatures(events=3)


class Budgets:
    """The day's budget counts, as take.lua and unspend.lua keep them (by counted id)."""

    def __init__(self, counts: dict[str, int] | None = None) -> None:
        self.counts: Counter[str] = Counter(counts or {})
        self.counted: set[str] = set()
        self.taken: list[list[str]] = []  # the decisions of each take

    async def spent(self, day: date, unreadable: set[str] | None = None) -> dict[str, int]:
        return dict(self.counts)

    async def take(self, spends: Sequence[BudgetSpend], limits: Mapping[str, int]) -> set[str]:
        self.taken.append([s.decision_id for s in spends])
        refused = set()
        for spend in spends:
            if counted_id(spend) in self.counted:
                continue
            if any(self.counts[o] >= limits.get(o, NO_CAP) for o in spend.offer_ids):
                refused.add(spend.decision_id)
                continue
            self.counts.update(spend.offer_ids)
            self.counted.add(counted_id(spend))
        return refused

    async def take_back(self, spends: Sequence[BudgetSpend], *, for_good: bool) -> int:
        """Each counted spending back once, however often it is listed (as unspend.lua);
        not for good: the worker may take the same decision again."""
        assert not for_good
        back = 0
        for spend in spends:
            if counted_id(spend) in self.counted:
                self.counted.discard(counted_id(spend))
                self.counts.subtract(spend.offer_ids)
                back += 1
        return back


class Refusing:
    """Records decisions as ``decision.lua`` does, answering each contact with the next
    queued status (APPLIED when none is left): a decision whose contact is refused over
    a ceiling is refused, one whose customer is erased is not kept. Reads find the
    customers as ``features`` says."""

    def __init__(self, statuses: list[ApplyStatus], features: dict[str, CustomerFeatures]) -> None:
        self.statuses = statuses
        self.features = features
        self.applied: list[list[Fact]] = []  # the contacts of each record that had any
        self.recorded: list[list[DecisionRecord]] = []
        self.reads: list[list[str]] = []
        self.budgets = Budgets()
        self.decisions = self
        self.broken: set[str] = set()  # customers whose keys fail the write
        self.unreadable: set[str] = set()  # customers whose keys fail the read
        self.zones_read: list[str] = []  # the home timezone each read was given

    async def record(
        self,
        records: Sequence[DecisionRecord],
        contacts: Sequence[Fact] = (),
        faults: dict[str, Exception] | None = None,
        refused: set[str] | None = None,
    ) -> list[bool]:
        self.recorded.append(list(records))
        for r in records:
            if r.customer_id in self.broken and faults is not None:
                faults[r.customer_id] = ResponseError("WRONGTYPE a key of another type")
        if contacts:
            self.applied.append(list(contacts))
        status = {f.decision_id: self.statuses.pop(0) if self.statuses else ApplyStatus.APPLIED
                  for f in contacts}  # fmt: skip
        kept = []
        for r in records:
            if r.customer_id in self.broken:
                kept.append(False)
                continue
            found = status.get(r.decision_id, ApplyStatus.APPLIED)
            if found == ApplyStatus.OVER_CEILING and refused is not None:
                refused.add(r.decision_id)
            kept.append(found == ApplyStatus.APPLIED)
        return kept

    async def read_views(
        self,
        customer_ids: Sequence[str],
        faults: dict[str, Exception] | None = None,
        home_timezone: str = "UTC",
    ) -> list[tuple[bool, CustomerFeatures | None]]:
        self.reads.append(list(customer_ids))
        self.zones_read.append(home_timezone)
        unreadable = [c for c in customer_ids if c in self.unreadable]
        if unreadable and faults is None:
            raise ValueError("invalid literal for int()")
        for c in unreadable:
            assert faults is not None
            faults[c] = ValueError("invalid literal for int()")
        return [
            (False, None)
            if c in self.unreadable
            else (c not in self.features, self.features.get(c))
            for c in customer_ids
        ]


def batch(*customers: str) -> BatchResult:
    """One web decision per customer named, each showing the tips, as a worker took it."""
    result = BatchResult(catalogue=CATALOGUE)
    for i, customer in enumerate(customers):
        moment = DecisionMoment(f"d{i}", customer, "web")
        decision = POLICY.decide(moment, KNOWN, NOW, None, CATALOGUE)
        assert decision.offers
        result.decisions.append(decision)
        result.moments[decision.decision_id] = moment
    return result


def offered(result: BatchResult) -> list[bool]:
    return [bool(d.offers) for d in result.decisions]


async def test_contacts_within_their_caps_are_recorded_once_and_nothing_changes() -> None:
    store = Refusing([], {"c1": KNOWN})
    result = batch("c1", "c2")
    before = list(result.decisions)
    assert await ContactReservations(store, POLICY).reserve(result) == Refusals()  # type: ignore[arg-type]
    assert result.decisions == before and store.reads == []
    (facts,) = store.applied
    (records,) = store.recorded  # recorded with them, before they are sent
    assert [r.decision_id for r in records] == ["d0", "d1"] and not any(r.sent for r in records)
    tips = [TIPS.offer_id]
    assert [f.fact_id for f in facts] == [contact_id("d0", tips), contact_id("d1", tips)]
    assert all(f.ceilings for f in facts)  # the web cap, checked by the store


async def test_the_ceilings_count_each_customers_own_days() -> None:
    """The caps a contact is recorded within count the days the customer's features told
    (their timezone), else the catalogue's: as the policy counted them."""
    store = Refusing([], {})
    result = batch("c1", "c2")
    result.timezones = {"c1": "Australia/Sydney", "c2": None}
    await ContactReservations(store, POLICY).reserve(result)  # type: ignore[arg-type]
    (facts,) = store.applied
    assert [f.ceilings.timezone for f in facts if f.ceilings] == ["Australia/Sydney", "UTC"]


async def test_a_decision_taken_again_counts_the_days_its_new_read_tells() -> None:
    in_tokyo = msgspec.structs.replace(KNOWN, timezone="Asia/Tokyo")
    store = Refusing([ApplyStatus.OVER_CEILING], {"c1": in_tokyo})
    result = batch("c1")
    await ContactReservations(store, POLICY).reserve(result)  # type: ignore[arg-type]
    assert store.zones_read == ["UTC"]  # the catalogue's, for a customer not told theirs
    first, again = store.applied
    assert [f.ceilings.timezone for f in first if f.ceilings] == ["UTC"]
    assert [f.ceilings.timezone for f in again if f.ceilings] == ["Asia/Tokyo"]


async def test_a_refused_decision_is_taken_again_from_a_new_read() -> None:
    # read again, the customer was shown two offers today already (by another process)
    shown_twice = CustomerFeatures(events=3)
    shown_twice.contact.shown_today["web"] = 2
    store = Refusing([ApplyStatus.APPLIED, ApplyStatus.OVER_CEILING], {"c2": shown_twice})
    result = batch("c1", "c2")
    assert await ContactReservations(store, POLICY).reserve(result) == Refusals(contacts=1)  # type: ignore[arg-type]
    assert store.reads == [["c2"]]
    assert offered(result) == [True, False]
    again = result.decisions[1]
    assert again.decision_id == "d1" and "suppressed:fatigue:web:day" in again.reasons
    assert len(store.applied) == 1  # nothing more to record: it shows nothing


async def test_a_refused_decision_whose_customer_cannot_be_read_again_shows_nothing() -> None:
    """Its contact over a ceiling, the new read of the customer fails on their keys: the
    decision is taken again as one showing nothing, not the batch failed for it."""
    store = Refusing([ApplyStatus.OVER_CEILING], {"c1": KNOWN})
    store.unreadable = {"c1"}
    result = batch("c1")
    assert await ContactReservations(store, POLICY).reserve(result) == Refusals(contacts=1)  # type: ignore[arg-type]
    (again,) = result.decisions
    assert again.offers == [] and CONTENDED in again.reasons


async def test_refused_round_after_round_a_decision_shows_nothing() -> None:
    store = Refusing([ApplyStatus.OVER_CEILING] * MAX_ROUNDS, {"c1": KNOWN})
    result = batch("c1")
    assert await ContactReservations(store, POLICY).reserve(result) == Refusals(contacts=MAX_ROUNDS)  # type: ignore[arg-type]
    assert len(store.applied) == MAX_ROUNDS
    *_, last = store.recorded  # the decision that shows nothing is recorded too
    assert [decode_next_best_offer(r.context).offers for r in last] == [[]]
    assert offered(result) == [False] and CONTENDED in result.decisions[0].reasons


def alert(customer: str) -> Intervention:
    return Intervention(intervention_id=f"i-{customer}", customer_id=customer, ts=NOW,
                        kind="save_desk", priority=1, trigger_event_id=None, reasons=[],
                        suggested_action="Call them.")  # fmt: skip


async def test_a_customer_erased_meanwhile_is_left_out() -> None:
    """Nothing more is sent about customers the store finds erased: neither their
    decisions nor their alerts nor their churn-risk examples."""
    store = Refusing([ApplyStatus.ERASED, ApplyStatus.OVER_CEILING], {"c3": KNOWN})
    result = batch("c1", "c2", "c3")  # c1 erased at the reserve, c2 when read again
    result.interventions = [alert("c1"), alert("c2"), alert("c3")]
    result.held_out = [alert("c1")]
    result.risk_examples = [
        RiskExample(example_id=f"x-{c}", x={}, y=False, snapshot_ts=NOW, label_ts=NOW)
        for c in ("c1", "c2", "c3")
    ]
    result.example_customers = {f"x-{c}": c for c in ("c1", "c2", "c3")}
    await ContactReservations(store, POLICY).reserve(result)  # type: ignore[arg-type]
    assert [d.customer_id for d in result.decisions] == ["c3"]
    assert [i.customer_id for i in result.interventions] == ["c3"] and result.held_out == []
    assert [e.example_id for e in result.risk_examples] == ["x-c3"]


VOUCHER = Offer(offer_id="voucher", title="Voucher", channels=["web"], priority=5.0,
                daily_limit=1)  # fmt: skip
BUDGETED = OfferCatalogue(version="b", offers=[VOUCHER, TIPS])
SPENDING = RuleBasedOfferPolicy(CatalogueHolder(BUDGETED), ContactPolicy(ControlGroup("t", 0)))


def budgeted(spent: dict[str, int]) -> BatchResult:
    """One web decision for c1, showing the voucher (of which one a day) first."""
    ledger = BudgetLedger.for_day(NOW, {"voucher": 1}, spent)
    moment = DecisionMoment("d0", "c1", "web")
    first = SPENDING.decide(moment, KNOWN, NOW, ledger, BUDGETED)
    assert [o.offer_id for o in first.offers] == ["voucher", "tips"]
    source = SourceRecord("touchpoints", 0, 7, b"c1", b"{}")
    return BatchResult(catalogue=BUDGETED, budgets=ledger, decisions=[first],
                       moments={"d0": moment}, touchpoints_of={"c1": [(source, 0)]},
                       results=[("web_click", "ok")])  # fmt: skip


async def test_a_decision_taken_again_may_have_what_the_refused_one_had_spent() -> None:
    """The refused decision took the last unit of a daily budget; its contact was refused,
    so it was not made: the unit goes back, and the decision taken again (under the same
    id) may show that offer, and counts it."""
    result = budgeted({})
    store = Refusing([ApplyStatus.OVER_CEILING], {"c1": KNOWN})
    assert await ContactReservations(store, SPENDING).reserve(result) == Refusals(contacts=1)  # type: ignore[arg-type]
    assert [o.offer_id for o in result.decisions[0].offers] == ["voucher", "tips"]
    assert store.budgets.taken == [["d0"], ["d0"]]
    assert store.budgets.counts["voucher"] == 1  # counted once


async def test_a_decision_over_a_budget_spent_elsewhere_is_taken_again() -> None:
    """Another process spent the voucher's last unit after the batch read the counts:
    the decision is refused before its contact is recorded, and decided again from the
    budgets as counted now."""
    result = budgeted({})
    store = Refusing([], {"c1": KNOWN})
    store.budgets.counts["voucher"] = 1  # spent elsewhere
    assert await ContactReservations(store, SPENDING).reserve(result) == Refusals(budgets=1)  # type: ignore[arg-type]
    (again,) = result.decisions
    assert [o.offer_id for o in again.offers] == ["tips"] and again.decision_id == "d0"
    assert "suppressed:budget:voucher" in again.reasons
    assert [[f.fact_id for f in facts] for facts in store.applied] == [[contact_id("d0", ["tips"])]]
    assert store.budgets.counts["voucher"] == 1  # the other process's unit, no more


async def test_a_decision_without_its_moment_is_sent_unchecked_and_said(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = Refusing([], {})
    result = batch("c1")
    result.moments.clear()
    assert await ContactReservations(store, POLICY).reserve(result) == Refusals()  # type: ignore[arg-type]
    assert store.applied == [] and offered(result) == [True]
    assert "1 decisions without their moment" in caplog.text


async def test_a_decision_left_out_gives_back_what_it_took() -> None:
    """Its budget unit was counted before the store found the customer erased: nothing
    is sent about them, and the unit goes back."""
    result = budgeted({})
    store = Refusing([ApplyStatus.ERASED], {})
    await ContactReservations(store, SPENDING).reserve(result)  # type: ignore[arg-type]
    assert result.decisions == [] and store.budgets.taken == [["d0"]]
    assert store.budgets.counts["voucher"] == 0


async def test_a_customer_whose_keys_fail_the_write_is_dead_lettered_alone() -> None:
    """One customer's keys fail the record (a key of another type): their touchpoint is
    dead-lettered with the reason and nothing is sent about them; the others' decisions
    go out as usual, and the batch is not failed for them."""
    result = budgeted({})
    other = batch("c0", "c2").decisions[1]  # d1, for c2
    result.decisions.append(other)
    result.moments[other.decision_id] = DecisionMoment(other.decision_id, "c2", "web")
    store = Refusing([], {})
    store.broken = {"c1"}
    await ContactReservations(store, SPENDING).reserve(result)  # type: ignore[arg-type]
    assert [d.customer_id for d in result.decisions] == ["c2"]
    (letter,) = result.dead_letters
    assert letter.record.offset == 7 and letter.error.startswith(
        "decision record failed: ResponseError"
    )
    assert result.results == [("web_click", "failed")]
    assert store.budgets.counts["voucher"] == 0  # taken, then given back


async def test_a_touchpoint_that_only_raised_an_alert_is_dead_lettered_with_its_customer() -> None:
    """The customer's click had a decision, their negative mention an alert alone: their
    keys failing the write leave both out, and both touchpoints are dead-lettered (the
    mention's alert was dropped with no letter, its event counted ok)."""
    result = budgeted({})
    mention = SourceRecord("touchpoints", 0, 8, b"c1", b"{}")
    result.touchpoints_of["c1"].append((mention, 1))
    result.results.append(("social_mention", "ok"))
    result.interventions.append(alert("c1"))
    store = Refusing([], {})
    store.broken = {"c1"}
    await ContactReservations(store, SPENDING).reserve(result)  # type: ignore[arg-type]
    assert result.decisions == [] and result.interventions == []
    assert [letter.record.offset for letter in result.dead_letters] == [7, 8]
    assert result.results == [("web_click", "failed"), ("social_mention", "failed")]


async def test_a_decision_kafka_took_keeps_its_spending_when_a_retry_leaves_it_out() -> None:
    """Delivered on an attempt whose other sends failed; on the retry its customer's keys
    fail the write: left out, but it was shown, so the budget it spent stays counted."""
    result = budgeted({})
    store = Refusing([], {})
    await ContactReservations(store, SPENDING).reserve(result)  # type: ignore[arg-type]
    assert store.budgets.counts["voucher"] == 1
    (shown,) = result.decisions
    result.delivered[id(shown)] = shown  # Kafka took it; another send failed
    store.broken = {"c1"}
    await ContactReservations(store, SPENDING).reserve(result)  # type: ignore[arg-type]
    assert result.decisions == [] and store.budgets.counts["voucher"] == 1


IN_TOKYO = msgspec.structs.replace(
    CATALOGUE, contact_policy=msgspec.structs.replace(CATALOGUE.contact_policy,
                                                      timezone="Asia/Tokyo"),
)  # fmt: skip


async def test_a_decision_taken_again_reads_with_the_catalogues_timezone() -> None:
    """Its contact refused, the customer is read again counting the catalogue's days
    (a customer not told their timezone), as the first read did: not UTC's."""
    store = Refusing([ApplyStatus.OVER_CEILING], {"c1": KNOWN})
    result = batch("c1")
    result.catalogue = IN_TOKYO
    await ContactReservations(store, POLICY).reserve(result)  # type: ignore[arg-type]
    assert store.zones_read == ["Asia/Tokyo"]
    _, again = store.applied
    assert [f.ceilings.timezone for f in again if f.ceilings] == ["Asia/Tokyo"]


class FailingAgain:
    """The offer policy, failing with ``error`` whenever it decides for ``broken``."""

    def __init__(self, broken: str, error: Exception) -> None:
        self.broken, self.error = broken, error

    def decide(self, moment: DecisionMoment, *args: object) -> object:
        if moment.customer_id == self.broken:
            raise self.error
        return SPENDING.decide(moment, *args)  # type: ignore[arg-type]


async def test_a_customer_whose_decision_fails_to_be_taken_again_is_dead_lettered_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Both contacts refused over a cap; taking c2's decision again fails (a fault in
    deciding on what the new read found): c2's touchpoint is dead-lettered, naming the
    error, and nothing of theirs is sent; c1's decision is taken again and goes out.
    Before, the batch failed at every attempt to send it, and was dead-lettered whole."""
    result = budgeted({})  # c1's decision, showing the voucher; its touchpoint at offset 7
    c2 = DecisionMoment("d1", "c2", "web")
    result.decisions.append(SPENDING.decide(c2, KNOWN, NOW, result.budgets, BUDGETED))
    result.moments["d1"] = c2
    result.touchpoints_of["c2"] = [(SourceRecord("touchpoints", 0, 8, b"c2", b"{}"), 1)]
    result.results.append(("web_click", "ok"))
    store = Refusing([ApplyStatus.OVER_CEILING] * 2, {"c1": KNOWN, "c2": KNOWN})
    policy = FailingAgain("c2", ValueError("year 0 is out of range"))
    refusals = await ContactReservations(store, policy).reserve(result)  # type: ignore[arg-type]
    assert refusals == Refusals(contacts=2)
    assert [(d.decision_id, d.customer_id) for d in result.decisions] == [("d0", "c1")]
    assert [(f.record.offset, f.error) for f in result.dead_letters] == [
        (8, "decision failed: ValueError: year 0 is out of range")
    ]
    assert result.results == [("web_click", "ok"), ("web_click", "failed")]
    assert store.recorded[-1] and {r.customer_id for r in store.recorded[-1]} == {"c1"}
    assert store.budgets.counts["voucher"] == 1  # c1's, taken again; nothing of c2's
    (said,) = [r.getMessage() for r in said_by(caplog, "agents.reserved_contacts")]
    assert said.startswith("1 customers' decisions could not be taken again (ValueError)")
    assert "c2" not in said
