"""An erased customer's churn-risk examples teach no model after the erasure: the live
risk learner skips them (not claimed, counted as ``erased``), however late they come or
often they are read again, and so does the model ``moments rebuild`` learns again.
Before, both learned them: the examples name their customer by keyed hash alone, and
nothing looked that hash's tombstone up."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from agents.risk_watch import RiskHolder, example_id
from feature_store import StoreUnavailable
from schemas.risk import RiskExample
from streams import rebuild_risk
from streams.erased_examples import erased_examples
from streams.metrics import Metrics
from streams.risk_learner import RiskLearner
from streams.settings import Settings
from tests.unit.test_learner_runs import (
    TS,
    Models,
    Tombstones,
    Topic,
    example,
    published_examples,
    risk_learner,
    run_until,
    store,
)
from tests.unit.test_learner_runs import topic as topic_fixture

topic = topic_fixture
ANA, BEN = "a1a1a1a1a1a1a1a1a1a1a1a1", "b2b2b2b2b2b2b2b2b2b2b2b2"  # keyed hashes


def results(metrics: Metrics) -> dict[str, float]:
    """``moments_risk_examples_total`` by result (those counted)."""
    found = {}
    for family in metrics.registry.collect():
        if family.name == "moments_risk_examples":
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.value:
                    found[sample.labels["result"]] = sample.value
    return found


async def test_an_erased_customers_examples_in_the_topic_teach_nothing(topic: Topic) -> None:
    shared, metrics = store(), Metrics()
    shared.erased_subjects.subjects.add(ANA)
    for ms in range(1, 4):  # still in the topic when they were erased, or sent late
        topic.append(0, example(example_id(ANA, ms)))
        topic.append(0, example(example_id(BEN, ms)))
    learner = RiskLearner(shared, RiskHolder(), metrics, "", "risk-examples",
                          publish_every_s=0.05)  # fmt: skip
    await run_until(learner, lambda: "risk" in shared.models.stored)
    assert learner.examples == 3 and published_examples(shared.models) == 3
    # not claimed: nothing naming them is written after their erasure
    assert {i.split(":")[1] for _, i in shared.models.example_claims} == {BEN}
    assert results(metrics) == {"learned": 3.0, "erased": 3.0}
    # one tombstone read a batch, each customer once
    assert sorted(shared.erased_subjects.asked[0]) == [ANA, BEN]


async def test_examples_learned_before_the_erasure_are_not_learned_again_after_it(
    topic: Topic,
) -> None:
    """A leader that learned an example, then failed before publishing it: the new
    leader reads it again after the customer's erasure, and learns it no more."""
    shared = store()
    topic.append(0, example(example_id(BEN, 1)))
    first = risk_learner(shared)
    await run_until(first, lambda: "risk" in shared.models.stored)
    topic.append(0, example(example_id(ANA, 1)))
    lost = risk_learner(shared, publish_every_s=60)
    await run_until(lost, lambda: lost.examples == 2)  # learned, never published
    shared.erased_subjects.subjects.add(ANA)  # the customer is erased
    topic.append(0, example(example_id(ANA, 2)))  # and one of theirs comes late
    second = risk_learner(shared)
    await run_until(second, lambda: len(shared.erased_subjects.asked) >= 3)
    assert second.examples == 1 and published_examples(shared.models) == 1


async def test_an_example_named_no_customer_is_learned_without_a_tombstone_read(
    topic: Topic,
) -> None:
    """One an older Moments named after the touchpoint that labelled it names no one."""
    shared = store()
    topic.append(0, example("risk:ev-1"))
    learner = risk_learner(shared)
    await run_until(learner, lambda: "risk" in shared.models.stored)
    assert learner.examples == 1 and shared.erased_subjects.asked == []


async def test_which_examples_are_of_customers_erased() -> None:
    asked: list[list[str]] = []

    async def erased_subjects(subjects: list[str]) -> list[bool]:
        asked.append(list(subjects))
        return [s == ANA for s in subjects]

    shared: Any = SimpleNamespace(erased_subjects=erased_subjects)
    ids = [example_id(ANA, 1), "risk:ev-1", example_id(BEN, 1), example_id(ANA, 2)]
    assert await erased_examples(shared, ids) == [True, False, False, True]
    assert asked == [[ANA, BEN]]
    assert await erased_examples(shared, ["risk:ev-1", "e-2"]) == [False, False]
    assert len(asked) == 1  # none named a customer: no round trip


async def test_the_model_a_rebuild_learns_again_learns_nothing_of_the_erased(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The rebuild replays the erasures first, so the target Redis holds the tombstones
    the examples are checked against."""

    def sent(subject: str, ms: int) -> bytes:
        return example(example_id(subject, ms))

    async def replay(settings: Any, topic: str, handle: Any, batch: int) -> None:
        await handle([SimpleNamespace(value=sent(s, ms)) for ms in range(5) for s in (ANA, BEN)])
        await handle([SimpleNamespace(value=b"not an example")])

    async def load(name: str) -> None:
        return None

    async def erased_subjects(subjects: list[str]) -> list[bool]:
        return [s == ANA for s in subjects]

    monkeypatch.setattr(rebuild_risk, "replay", replay)
    target: Any = SimpleNamespace(models=SimpleNamespace(load=load),
                                  erased_subjects=erased_subjects)  # fmt: skip
    model = await rebuild_risk.risk_model(Settings(), target, 500)
    assert model.examples == 5


def test_examples_decoded_for_the_rebuild_leave_out_what_is_not_one() -> None:
    got = rebuild_risk.readable_examples([example("risk:ev-1"), b"{}", b"\xff"])
    assert [e.example_id for e in got] == ["risk:ev-1"]
    assert isinstance(got[0], RiskExample) and got[0].snapshot_ts == TS


class ErasedDuringTheClaim(Models):
    """claim_examples.lua, with ``subject``'s erasure landing while the claims are made
    (after the learner read the tombstones, before it learns)."""

    def __init__(self, tombstones: Any, subject: str) -> None:
        super().__init__()
        self._tombstones, self._subject = tombstones, subject

    async def claim_examples(self, name: str, claims: list[tuple[str, str]]) -> list[str]:
        found = await super().claim_examples(name, claims)
        self._tombstones.subjects.add(self._subject)
        return found


async def test_an_example_whose_customer_is_erased_while_it_is_claimed_teaches_nothing(
    topic: Topic,
) -> None:
    """The tombstones were read before the claim alone: an erasure between the two had the
    example claimed and learned after it, and counted as learned, not erased."""
    shared, metrics = store(), Metrics()
    shared.models = ErasedDuringTheClaim(shared.erased_subjects, ANA)
    topic.append(0, example(example_id(ANA, 1)))
    topic.append(0, example(example_id(BEN, 1)))
    learner = RiskLearner(shared, RiskHolder(), metrics, "", "risk-examples",
                          publish_every_s=0.05)  # fmt: skip
    await run_until(learner, lambda: "risk" in shared.models.stored)
    assert learner.examples == 1 and published_examples(shared.models) == 1
    assert results(metrics) == {"learned": 1.0, "erased": 1.0}
    # its claim, made after the erasure, is taken back: nothing naming them stays written
    assert {i.split(":")[1] for _, i in shared.models.example_claims} == {BEN}


class FailsSecond(Tombstones):
    """The tombstones, out of reach for the second read (the check after the claim)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def __call__(self, subjects: list[str]) -> list[bool]:
        self.calls += 1
        if self.calls == 2:
            raise StoreUnavailable("redis away")
        return await super().__call__(subjects)


async def test_a_claim_made_after_the_erasure_is_dropped_when_its_check_met_an_outage(
    topic: Topic,
) -> None:
    """The check after the claim failed, the learner restarted, and its first tombstone
    read left the example out: the claim made after the erasure (naming the customer by
    keyed hash) stayed until the claims expire."""
    shared = store()
    shared.erased_subjects = FailsSecond()
    shared.models = ErasedDuringTheClaim(shared.erased_subjects, ANA)
    topic.append(0, example(example_id(ANA, 1)))
    first = RiskLearner(shared, RiskHolder(), Metrics(), "", "risk-examples",
                        publish_every_s=0.05)  # fmt: skip
    with pytest.raises(StoreUnavailable):
        await asyncio.wait_for(first.run(lambda: True), 5)
    assert shared.models.example_claims  # claimed after the erasure
    second = RiskLearner(shared, RiskHolder(), Metrics(), "", "risk-examples",
                         publish_every_s=0.05)  # fmt: skip
    await run_until(second, lambda: shared.erased_subjects.calls >= 3)
    assert second.examples == 0
    assert shared.models.example_claims == {}
