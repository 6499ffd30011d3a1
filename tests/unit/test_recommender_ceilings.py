"""A decision whose contact the store refuses over a ceiling (another process's contact
took one of the customer's caps to its limit since the batch read them) is not made: its
request is decided again from a new read, its budget spending goes back, and it is not
published.

The store here is :class:`tests.unit.test_recommender_overlap.SlowStore`, a test double
told which decisions to refuse; the ceilings themselves are checked on real Redis in
``tests/integration/test_contact_ceilings.py``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

import msgspec

from agents.contact_ceilings import CONTENDED, MAX_ROUNDS, ceilings_of
from schemas import NextBestOffer
from streams.api.batch_decisions import DecisionCounters
from streams.api.recommender import Recommender
from tests.unit.test_recommender_overlap import (
    BUDGETS,
    CONTACTS,
    KNOWN,
    Published,
    SlowStore,
    offer_ids,
    recommender,
)


class Publishing(Published):
    """Test double for KeyedPublisher: delivers at once, and keeps the decision ids."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def publish(self, topic: str, records: Sequence[tuple[bytes, bytes]]) -> asyncio.Future[None]:
        self.sent += [json.loads(value)["decision_id"] for _, value in records]
        return super().publish(topic, records)


def publishing(store: SlowStore, catalogue: object = BUDGETS) -> tuple[Recommender, Publishing]:
    rec = recommender(store, catalogue)  # type: ignore[arg-type]
    sent = Publishing()
    rec._publisher = sent  # type: ignore[assignment]
    rec._delivery._publisher = sent  # type: ignore[assignment]  # what publishes decisions
    return rec, sent


async def test_a_refused_decision_is_decided_again_and_only_the_second_is_made() -> None:
    store = SlowStore({"c1": KNOWN}, spent={"voucher": 0})
    store.refuse["c1"] = 1
    rec, sent = publishing(store)
    batches: list[int] = []
    rec._decisions._counters = DecisionCounters(batch_decided=batches.append)
    answer = await rec.recommend("c1", "web", 3)
    await rec.drain()
    assert store.reads == [["c1"], ["c1"]]  # read again
    assert batches == [1]  # one batch, decided in two rounds
    assert store.writes == [["c1"], ["c1"]]
    assert isinstance(answer, NextBestOffer) and "voucher" in offer_ids(answer)
    assert store.refused_ids[0] != answer.decision_id  # a new decision, under a new id
    assert sent.sent == [answer.decision_id]  # the refused one is never published
    # the refused decision's spending went back; the one made stays counted
    assert store.budgets.counts["voucher"] == 1
    assert store.budgets.counted == {answer.decision_id}


async def test_each_contact_is_sent_with_the_ceilings_it_was_decided_within() -> None:
    store = SlowStore({"c1": KNOWN})
    rec, _ = publishing(store, CONTACTS)
    answer = await rec.recommend("c1", "email", 3)
    await rec.drain()
    assert isinstance(answer, NextBestOffer) and answer.offers
    (sent,) = store.ceilings
    assert sent == [ceilings_of(answer, CONTACTS)]
    assert (("shown:email",), 1, 1) in sent[0].counts  # CONTACTS' daily email cap


async def test_the_ceilings_count_the_days_the_customers_features_told() -> None:
    """A customer whose touchpoints told their timezone: the caps their contact is
    recorded within count their own days, as the policy did; the read is given the
    catalogue's, for a customer not told theirs."""
    sydney = msgspec.structs.replace(KNOWN, timezone="Australia/Sydney")
    store = SlowStore({"c1": sydney, "c2": KNOWN})
    rec, _ = publishing(store, CONTACTS)
    first, second = await asyncio.gather(rec.recommend("c1", "email", 3),
                                         rec.recommend("c2", "email", 3))  # fmt: skip
    await rec.drain()
    assert isinstance(first, NextBestOffer) and isinstance(second, NextBestOffer)
    sent = [c for batch in store.ceilings for c in batch]
    assert sorted(c.timezone for c in sent) == ["Australia/Sydney", "UTC"]
    assert set(store.zones_read) == {CONTACTS.contact_policy.timezone}


async def test_refused_round_after_round_the_caller_is_shown_nothing() -> None:
    store = SlowStore({"c1": KNOWN}, spent={"voucher": 0})
    store.refuse["c1"] = 99
    rec, sent = publishing(store)
    answer = await rec.recommend("c1", "web", 3)
    await rec.drain()
    assert len(store.reads) == MAX_ROUNDS
    assert isinstance(answer, NextBestOffer) and answer.offers == []
    assert answer.reasons[-1] == CONTENDED
    assert store.ceilings[-1] == []  # recorded with no contact: it showed nothing
    assert sent.sent == [answer.decision_id]
    assert store.budgets.counts["voucher"] == 0 and not store.budgets.counted


async def test_a_refused_decision_its_caller_was_shown_is_recorded_without_ceilings() -> None:
    """The latency budget ran out while the decision was stored: its caller got it, so
    the customer sees it; refused over a ceiling, it is recorded all the same, and
    published."""
    store = SlowStore({"c1": KNOWN}, spent={"voucher": 0})
    store.refuse["c1"] = 1
    store.write_s = 0.2
    store.take_s = 0.001  # the budget counted: it may be shown
    rec, sent = publishing(store)
    rec.budget_s = 0.05
    answer = await rec.recommend("c1", "web", 3)
    await rec.drain()
    assert isinstance(answer, NextBestOffer) and answer.offers
    assert store.reads == [["c1"]]  # not decided again
    assert store.writes == [["c1"], ["c1"]]
    assert store.ceilings[1] == [None]  # the second write holds it whatever the counts
    assert sent.sent == [answer.decision_id]
    assert store.budgets.counted == {answer.decision_id}  # shown: it stays counted


async def test_others_in_the_batch_are_answered_at_once() -> None:
    """Only the refused request waits for a second round."""
    store = SlowStore({"c1": KNOWN, "c2": KNOWN})
    store.refuse["c1"] = 1
    rec, sent = publishing(store)
    first = asyncio.create_task(rec.recommend("c1", "web", 3))
    second = await rec.recommend("c2", "web", 3)
    assert not first.done()  # c2 was answered while c1 is read again
    answer = await first
    await rec.drain()
    assert [sorted(r) for r in store.reads] == [["c1", "c2"], ["c1"]]
    assert isinstance(second, NextBestOffer) and isinstance(answer, NextBestOffer)
    assert sorted(sent.sent) == sorted([answer.decision_id, second.decision_id])


IN_TOKYO = msgspec.structs.replace(
    CONTACTS, contact_policy=msgspec.structs.replace(CONTACTS.contact_policy,
                                                     timezone="Asia/Tokyo"),
)  # fmt: skip


async def test_the_read_and_the_ceilings_count_a_tokyo_catalogues_days() -> None:
    store = SlowStore({"c1": KNOWN})
    rec, _ = publishing(store, IN_TOKYO)
    answer = await rec.recommend("c1", "email", 3)
    await rec.drain()
    assert isinstance(answer, NextBestOffer)
    assert set(store.zones_read) == {"Asia/Tokyo"}
    assert [c.timezone for batch in store.ceilings for c in batch] == ["Asia/Tokyo"]
