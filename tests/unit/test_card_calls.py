"""Calls made from alert cards: counted as contacts on the call channel once their
touchpoint is applied, before the batch's decisions read the caps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from feature_store import ApplyStatus, CustomerFeatures, Fact
from schemas import Call
from tests.unit.factories import T0
from tests.unit.test_touchpoint_handler import RecordingStore, click, handler, records


def outbound(event_id: str, card: str | None = "a-card") -> Call:
    return Call(event_id=event_id, customer_id="cust-1", ts=T0, status="started",
                direction="outbound", reason="sales", intervention_id=card)  # fmt: skip


class OrderedStore(RecordingStore):
    """Notes what the handler asked of the store, in order."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.asked: list[str] = []

    async def apply_facts(
        self, facts: Sequence[Fact], ran: dict[int, ApplyStatus] | None = None
    ) -> list[ApplyStatus]:
        self.asked += [f.fact_id for f in facts]
        return await super().apply_facts(facts, ran)

    async def read_views(self, *args: Any, **kw: Any) -> list[tuple[bool, CustomerFeatures | None]]:
        self.asked.append("read")
        return await super().read_views(*args, **kw)


async def test_a_call_made_from_a_card_is_counted_before_the_batch_reads_the_caps() -> None:
    store = OrderedStore()
    await handler(store).handle(records(outbound("card-call"), outbound("own-call", None),
                                        click("page", "/account/cancel")))  # fmt: skip
    assert store.asked[:2] == ["o:card-call", "read"]  # the other call is none of a card's
    (fact,) = [f for facts in store.facts for f in facts if f.fact_id == "o:card-call"]
    assert fact.contact and ("incr", "shown:call", "1") in fact.updates


async def test_a_card_call_whose_touchpoint_could_not_be_applied_is_not_counted() -> None:
    store = OrderedStore(poison=["broken-call"])
    result = await handler(store).handle(records(outbound("card-call"), outbound("broken-call")))
    assert [f for f in store.asked if f != "read"] == ["o:card-call"]
    assert [r for _, r in result.results] == ["ok", "failed"]


async def test_a_card_call_whose_contact_redis_refuses_is_dead_lettered_to_count_later() -> None:
    store = OrderedStore()
    store.refused_facts = {"o:corrupt-call"}
    batch = records(outbound("card-call"), outbound("corrupt-call"), outbound("corrupt-call"))
    result = await handler(store).handle(batch)
    counted = [f.fact_id for facts in store.facts for f in facts]
    assert "o:card-call" in counted and "o:corrupt-call" not in counted
    assert [r for _, r in result.results] == ["ok", "failed", "failed"]
    assert store.applied == ["card-call", "corrupt-call", "corrupt-call"]  # they stand
    letters = [
        (letter.record.offset, letter.result, letter.error) for letter in result.dead_letters
    ]
    reason = "call contact failed: ResponseError: WRONGTYPE"
    assert [(at, i, error[: len(reason)]) for at, i, error in letters] == [
        (1, 1, reason),
        (2, 2, reason),
    ]
    # sent back once the key is mended, it is counted then (and once)
    store.refused_facts.clear()
    store.facts.clear()
    again = await handler(store).handle(records(outbound("corrupt-call")))
    assert not again.dead_letters and [r for _, r in again.results] == ["duplicate"]
    assert [f.fact_id for facts in store.facts for f in facts] == ["o:corrupt-call"]


async def test_a_card_call_whose_contact_redis_refuses_is_not_decided_until_sent_back() -> None:
    """A call to cancel is worth deciding on (it may raise an alert): one whose contact
    was refused is set aside whole, with one letter, however its customer's features
    read; once it is sent back and counted, it is decided."""
    store = OrderedStore()
    store.refused_facts = {"o:cancel-call"}
    store.unreadable = {"cust-1": "not a count"}  # the counter that refused the contact
    cancel = msgspec.structs.replace(outbound("cancel-call"), reason="cancel")
    result = await handler(store).handle(records(cancel))
    assert [r for _, r in result.results] == ["failed"] and not result.interventions
    assert [letter.error.split(":")[0] for letter in result.dead_letters] == ["call contact failed"]
    assert "read" not in store.asked  # not decided
    store.refused_facts.clear()
    store.unreadable.clear()
    again = await handler(store).handle(records(cancel))
    assert [r for _, r in again.results] == ["duplicate"] and not again.dead_letters
    assert "read" in store.asked  # decided now
