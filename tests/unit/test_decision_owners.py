"""A worker's fresh decisions are claimed before they count; those another worker
claimed first leave the batch, and nothing else does."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import cast

from agents.batch_result import BatchResult
from agents.decision_owners import claims_of, keep_owned, leave_unowned
from agents.moments import DecisionMoment
from feature_store import FeatureStore
from schemas import NextBestOffer

TS = datetime(2026, 12, 6, 12, tzinfo=UTC)


def decision(decision_id: str, trigger: str | None, customer: str = "c1") -> NextBestOffer:
    return NextBestOffer(decision_id=decision_id, customer_id=customer, ts=TS, channel="web",
                         trigger_event_id=trigger, offers=[])  # fmt: skip


def batch(*decisions: tuple[NextBestOffer, str | None]) -> BatchResult:
    result = BatchResult(decisions=[d for d, _ in decisions])
    for d, owner in decisions:
        result.moments[d.decision_id] = DecisionMoment(d.decision_id, d.customer_id, "web")
        if owner is not None:
            result.owners[d.decision_id] = owner
    return result


def test_only_fresh_decisions_on_a_touchpoint_are_claimed() -> None:
    result = batch(
        (decision("d1", "e1"), "tp/0/1"),
        (decision("d2", "e2"), None),  # sent again as recorded: claims nothing
        (decision("d3", None), "tp/0/3"),  # no touchpoint: nothing to share
        (decision("d4", "e4", "c2"), "tp/1/4"),
    )
    assert claims_of(result) == (["d1", "d4"], [("c1", "e1", "tp/0/1"), ("c2", "e4", "tp/1/4")])


def test_a_decision_another_worker_owns_leaves_the_batch_alone() -> None:
    result = batch((decision("d1", "e1"), "tp/0/1"), (decision("d2", "e2"), "tp/0/2"))
    leave_unowned(result, {"d1"})
    assert [d.decision_id for d in result.decisions] == ["d2"]
    assert list(result.moments) == ["d2"] and list(result.owners) == ["d2"]


class _Decisions:
    def __init__(self, owned: list[bool]) -> None:
        self.owned = owned
        self.asked: list[Sequence[tuple[str, str, str]]] = []

    async def own(
        self, claims: Sequence[tuple[str, str, str]], faults: dict[str, Exception] | None = None
    ) -> list[bool]:
        self.asked.append(claims)
        return self.owned


class _Store:
    def __init__(self, owned: list[bool]) -> None:
        self.decisions = _Decisions(owned)


def test_the_batch_keeps_what_it_owns_and_claims_it_once() -> None:
    store = _Store([False, True])
    result = batch((decision("d1", "e1"), "tp/0/1"), (decision("d2", "e2"), "tp/0/2"),
                   (decision("d3", "e3"), None))  # fmt: skip
    left = asyncio.run(keep_owned(cast(FeatureStore, store), result))
    assert left == 1
    assert [d.decision_id for d in result.decisions] == ["d2", "d3"]
    assert result.owners == {}  # claimed: a retry of the batch asks nothing
    assert asyncio.run(keep_owned(cast(FeatureStore, store), result)) == 0
    assert len(store.decisions.asked) == 1
