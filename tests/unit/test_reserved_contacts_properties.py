"""Properties of ``ContactReservations.reserve`` (agents/reserved_contacts.py) with the
store doubles of ``test_reserved_contacts.py``: whatever the store answers (contacts
applied, refused over a ceiling, customers erased), whichever customers' keys fail, and
whatever other processes spent meanwhile, no daily offer budget goes past its limit, the
counts change by exactly what the decisions sent show, and nothing is sent about a
customer whose decisions could not be recorded."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, note, settings
from hypothesis import strategies as st

from agents.batch_result import BatchResult
from agents.contact_ledger import contacted
from agents.contact_policy import FIRST_CONTACT
from agents.decision_records import decision_record
from agents.moments import DecisionMoment
from agents.offer_budget import BudgetLedger
from agents.reserved_contacts import ContactReservations
from feature_store import ApplyStatus, DecisionRecord, Fact
from tests.unit.decision_strategies import (
    CHANNELS,
    budgeted_catalogues,
    customer_features,
    offer_policies,
)
from tests.unit.test_reserved_contacts import Refusing

NOW = datetime(2026, 12, 2, 10, tzinfo=UTC)
CUSTOMERS = ("c1", "c2", "c3")
# what the store answers each contact (none left: applied); over a ceiling most often
answers = st.sampled_from(
    [ApplyStatus.APPLIED, ApplyStatus.OVER_CEILING, ApplyStatus.OVER_CEILING, ApplyStatus.ERASED]
)


class Keeping(Refusing):
    """``Refusing``, noting the customers of the decisions it did not keep: erased since
    the batch's read, or their keys failing the write."""

    def __init__(self, statuses: list[ApplyStatus], features: dict[str, Any]) -> None:
        super().__init__(statuses, features)
        self.lost: set[str] = set()

    async def record(
        self,
        records: Sequence[DecisionRecord],
        contacts: Sequence[Fact] = (),
        faults: dict[str, Exception] | None = None,
        refused: set[str] | None = None,
    ) -> list[bool]:
        refused = set() if refused is None else refused
        kept = await super().record(records, contacts, faults, refused)
        self.lost |= {
            r.customer_id
            for r, k in zip(records, kept, strict=True)
            if not k and r.decision_id not in refused  # refused: decided again
        }
        return kept


@dataclass
class Reservation:
    """A batch decided from one read, and the store it is reserved in."""

    result: BatchResult
    store: Keeping
    reservations: ContactReservations
    limits: dict[str, int]
    decided: list[str]  # the ids of the batch's decisions, in order


@st.composite
def reservations(draw: st.DrawFn) -> Reservation:
    """One to six decisions for up to three customers on one channel, decided from one
    read with one budget ledger; a store that refuses or erases some of their contacts,
    fails some customers' keys, and counts what other processes spent since the read."""
    catalogue = draw(budgeted_catalogues())
    policy = draw(offer_policies(catalogue))
    limits = catalogue.daily_limits()
    read = {o: draw(st.integers(0, limit)) for o, limit in limits.items()}
    ledger = BudgetLedger.for_day(NOW, limits, read)
    customers = draw(st.lists(st.sampled_from(CUSTOMERS), min_size=1, max_size=6))
    features = {c: draw(st.none() | customer_features(NOW)) for c in sorted(set(customers))}
    channel = draw(st.sampled_from(["web", "web", "web", *CHANNELS]))  # the web most often
    result = BatchResult(catalogue=catalogue, budgets=ledger)
    views = dict(features)
    for i, customer in enumerate(customers):
        moment = DecisionMoment(f"d{i}", customer, channel, limit=3)
        decision = policy.decide(moment, views[customer], NOW, ledger, catalogue)
        views[customer] = contacted(views[customer] or FIRST_CONTACT, decision)
        result.decisions.append(decision)
        result.moments[decision.decision_id] = moment
    # a new read finds the customer as read (None: a first contact), with what other
    # processes did since, or erased since
    again = {c: draw(st.sampled_from(["as read", "changed", "erased"])) for c in features}
    still = {
        c: f if again[c] == "as read" else draw(st.none() | customer_features(NOW))
        for c, f in features.items()
        if again[c] != "erased"
    }
    store = Keeping(draw(st.lists(answers, min_size=6, max_size=12)), still)
    store.broken = set(draw(st.lists(st.sampled_from(CUSTOMERS), max_size=1)))
    store.unreadable = set(draw(st.lists(st.sampled_from(CUSTOMERS), max_size=1)))
    store.budgets.counts.update(
        {o: draw(st.integers(read[o], limit)) for o, limit in limits.items()}
    )
    reserving = ContactReservations(store, policy)  # type: ignore[arg-type]
    return Reservation(result, store, reserving, limits, [d.decision_id for d in result.decisions])


@settings(max_examples=50, deadline=None)
@given(batch=reservations())
async def test_budgets_are_never_overspent_and_count_exactly_what_is_sent(
    batch: Reservation,
) -> None:
    """No daily budget goes past its limit, and the counts change by exactly the limited
    offers the decisions left to send show: no unit leaks (taken by a decision refused
    or left out, never given back) and none is counted twice."""
    store = batch.store
    initial = Counter(store.budgets.counts)
    await batch.reservations.reserve(batch.result)
    note(repr(batch.result.decisions))
    final = Counter(store.budgets.counts)
    for offer_id, limit in batch.limits.items():
        assert final[offer_id] <= limit
    sent = Counter(
        o.offer_id for d in batch.result.decisions for o in d.offers if o.offer_id in batch.limits
    )
    assert final - initial == sent and initial - final == Counter()


@settings(max_examples=50, deadline=None)
@given(batch=reservations())
async def test_what_is_sent_is_what_was_recorded_and_no_more(batch: Reservation) -> None:
    """Every decision sent is the one the store last recorded under its id (so its
    contact was counted against the caps: one the store does not know of escapes the
    caps of the customer's next decision), each at most once and in the batch's order,
    and nothing is sent about a customer the store did not keep a decision of (erased
    since the read, or their keys failing the write)."""
    store = batch.store
    await batch.reservations.reserve(batch.result)
    sent = batch.result.decisions
    note(repr(sent))
    ids = [d.decision_id for d in sent]
    assert ids == [i for i in batch.decided if i in ids]
    last = {r.decision_id: r for records in store.recorded for r in records}
    for decision in sent:
        assert decision.customer_id not in store.lost
        assert last[decision.decision_id] == decision_record(decision, sent=False)
