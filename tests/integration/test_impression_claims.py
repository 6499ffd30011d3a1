"""One shown offer (decision, offer) is one example, on real Redis: ``claim.lua`` claims
its outcomes together, each kind once, and says whether an outcome is its first example,
relabels it with a higher reward, or teaches nothing; a record read again gets what it
got when it claimed, so that a learner restarted from a snapshot that lacks it (any of
its impression's outcomes) learns the same model; claims of the previous version (one per
outcome kind) count as learned with their outcome's reward."""

from __future__ import annotations

import random
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import redis.asyncio as aioredis

from agents.bandit import LinUCBOffers
from agents.context import DIMENSION
from agents.learned_policy import ModelHolder
from agents.learning import REWARDS
from feature_store import FeatureStore
from feature_store.decision_log import Claim
from feature_store.records import DecisionRecord
from schemas import NextBestOffer, OfferScore, Outcome, decode_next_best_offer, encode_decision
from schemas.outcomes import encode_outcome
from streams.metrics import Metrics
from streams.offer_learner import OfferLearner
from streams.services import Services
from tests.integration.test_learning_storage import _store

pytestmark = pytest.mark.integration

DECIDED = datetime.now(UTC) - timedelta(hours=1)


async def _decided(store: FeatureStore, *decision_ids: str, seed: int = 0) -> None:
    """Customer c1's decisions, each offering book-club first, in varied contexts."""
    draw = random.Random(seed)
    records = []
    for decision_id in decision_ids:
        made = NextBestOffer(
            decision_id=decision_id, customer_id="c1", ts=DECIDED, channel="web",
            trigger_event_id=None, context=[draw.random() for _ in range(DIMENSION)],
            offers=[OfferScore(offer_id="book-club", score=1.0, propensity=1.0)],
        )  # fmt: skip
        ts_ms = int(DECIDED.timestamp() * 1000)
        records.append(DecisionRecord("c1", decision_id, ts_ms, encode_decision(made)))
    await store.decisions.record(records)


async def _claims(
    store: FeatureStore, *asked: tuple[str, str, str]
) -> list[tuple[Claim, float | None]]:
    """Claim (decision, outcome, source record) of c1's book-club: each claim, with the
    reward learned before it for a relabel."""
    before: dict[int, float] = {}
    claims = [("c1", d, f"{d}:book-club:{outcome}", source) for d, outcome, source in asked]
    found = await store.decisions.claim_outcomes(claims, rewards=REWARDS, before=before)
    return [(claim, before.get(i)) for i, claim in enumerate(found)]


async def test_a_shown_offers_outcomes_are_one_example_of_its_strongest_reward(
    kafka_redis: Services,
) -> None:
    store = _store(kafka_redis)
    await _decided(store, "d1", "d2", "d3")
    try:
        assert await _claims(store, ("d1", "clicked", "0:1")) == [("learn", None)]
        # accepted after the click: the example learned as 0.3 is relabelled
        assert await _claims(store, ("d1", "accepted", "0:2")) == [("relabel", 0.3)]
        # weaker or equal outcomes after: they teach nothing
        assert await _claims(store, ("d1", "dismissed", "0:3"), ("d1", "ignored", "0:4")) == [
            ("superseded", None), ("superseded", None)
        ]  # fmt: skip
        assert await _claims(store, ("d1", "accepted", "0:9")) == [("skip", None)]  # a copy
        # each record read again gets what it got: learn, relabel from 0.3, nothing
        assert await _claims(
            store, ("d1", "clicked", "0:1"), ("d1", "accepted", "0:2"), ("d1", "ignored", "0:4")
        ) == [("relearn", None), ("relabel_again", 0.3), ("superseded_again", None)]
        # a timeout's ignored, then a late acceptance; a shown (no reward) teaches nothing
        assert await _claims(
            store, ("d2", "shown", "0:5"), ("d2", "ignored", "0:6"), ("d2", "accepted", "0:7")
        ) == [("learn", None), ("learn", None), ("relabel", 0.0)]
        assert await _claims(store, ("d3", "accepted", "0:8"), ("d3", "clicked", "0:10")) == [
            ("learn", None), ("superseded", None)
        ]  # fmt: skip
        outcomes = (await store.export("c1")).outcomes
        assert set(outcomes) == {"d1:book-club", "d2:book-club", "d3:book-club"}
        assert outcomes["d1:book-club"] == (
            "0:1|clicked|0.3,0:2|accepted|1.0,0:3|dismissed|0.0,0:4|ignored|0.0"
        )
    finally:
        await store.close()


async def test_claims_of_the_previous_version_count_as_learned_with_their_reward(
    kafka_redis: Services,
) -> None:
    """During a rolling upgrade, a learner of the previous version claimed each outcome
    kind under its own field, and learned each as an example of its own."""
    store = _store(kafka_redis)
    await _decided(store, "d1", "d2")
    keys = store._keys.for_customer("c1")
    client = aioredis.Redis.from_url(kafka_redis.redis_url, decode_responses=True)
    try:
        await client.hset(keys.outcomes, mapping={"d1:book-club:clicked": "0:1",
                                                  "d2:book-club:accepted": "0:2"})  # fmt: skip
        assert await _claims(store, ("d1", "accepted", "0:3"), ("d2", "clicked", "0:4")) == [
            ("relabel", 0.3), ("superseded", None)
        ]  # fmt: skip
        assert await _claims(store, ("d1", "clicked", "0:5")) == [("skip", None)]  # a copy
        # read again: the old claim's record as the previous version would, the new ones
        # as they were
        assert await _claims(
            store, ("d1", "clicked", "0:1"), ("d1", "accepted", "0:3"), ("d2", "clicked", "0:4")
        ) == [("relearn", None), ("relabel_again", 0.3), ("superseded_again", None)]
    finally:
        await client.aclose()
        await store.close()


def _record(offset: int, decision_id: str, outcome: str) -> SimpleNamespace:
    value = encode_outcome(Outcome(decision_id=decision_id, customer_id="c1",
                                   offer_id="book-club", outcome=outcome,
                                   ts=DECIDED + timedelta(minutes=offset)))  # fmt: skip
    return SimpleNamespace(topic="offer-outcomes", partition=0, offset=offset, key=b"c1",
                           value=value, headers=[])  # fmt: skip


def _learner(store: FeatureStore, state: dict[str, Any] | None = None) -> OfferLearner:
    async def dead_letter(**letter: Any) -> Awaitable[None]:
        raise AssertionError(f"nothing is set aside here: {letter}")

    learner = OfferLearner(store, ModelHolder(), Metrics(), "", "offer-outcomes", dead_letter)
    learner._start(state, 0)
    return learner


def _same(one: LinUCBOffers, other: LinUCBOffers) -> bool:
    return set(one.arms) == set(other.arms) and all(
        one.arms[a].n == other.arms[a].n
        and np.allclose(one.arms[a].a, other.arms[a].a, atol=1e-9)
        and np.allclose(one.arms[a].b, other.arms[a].b, atol=1e-9)
        for a in one.arms
    )


def _figure(learner: OfferLearner, result: str) -> float:
    found = learner._metrics.registry.get_sample_value(
        "moments_learning_outcomes_total", {"result": result}
    )
    return found or 0.0


async def test_a_learner_restarted_from_any_snapshot_learns_each_impression_once(
    kafka_redis: Services,
) -> None:
    """Wherever the snapshot it restarts from stops (before an impression's first
    outcome, between it and its relabel, or after both), the restarted learner reads the
    rest again and ends with the model that learned every record once; and the model is
    the one that learned each impression once, with its strongest outcome."""
    store = _store(kafka_redis)
    await _decided(store, "d1", "d2", "d3")
    records = [
        _record(0, "d1", "clicked"), _record(1, "d2", "ignored"), _record(2, "d1", "accepted"),
        _record(3, "d3", "accepted"), _record(4, "d2", "accepted"),
        _record(5, "d3", "dismissed"), _record(6, "d1", "clicked"),
    ]  # fmt: skip
    copy = _record(7, "d1", "accepted")  # sent twice, another record
    try:
        first = _learner(store)
        snapshots = [first._model.to_dict()]  # the model after each record
        for record in [*records, copy]:
            await first._learn(0, [record])
            snapshots.append(first._model.to_dict())
        whole = first._model
        assert whole.updates == 3 and whole.arms["book-club"].n == 3
        assert _figure(first, "learned") == 3 and _figure(first, "relabelled") == 2
        assert _figure(first, "superseded") == 1 and _figure(first, "duplicate") == 2
        # as if each impression had been reported once, with its strongest outcome
        contexts = await store.decisions.contexts([("c1", d) for d in ("d1", "d2", "d3")])
        once = LinUCBOffers(DIMENSION)
        for context in contexts:
            assert context is not None
            once.learn_one(_context(context), "book-club", 1.0)
        assert _same(whole, once)
        for x in (_context(c) for c in contexts if c is not None):
            assert whole.predict_one(x, "book-club") == pytest.approx(
                once.predict_one(x, "book-club"), abs=1e-12
            )
        for stopped in range(len(records) + 1):  # the snapshot held the first `stopped`
            restarted = _learner(store, snapshots[stopped] if stopped else None)
            await restarted._learn(0, [*records[stopped:], copy])
            assert _same(restarted._model, whole), stopped
            assert _figure(restarted, "learned") == 0  # nothing new: counted before
            assert _figure(restarted, "relabelled") == 0
    finally:
        await store.close()


def _context(context: str) -> list[float]:
    decision = decode_next_best_offer(context)
    assert decision.context is not None
    return list(decision.context)


async def test_an_impression_read_again_in_one_batch_relabels_once(
    kafka_redis: Services,
) -> None:
    """The records of a batch are claimed in one round trip, in order: the impression's
    first outcome and its relabel in the same batch teach one example."""
    store = _store(kafka_redis)
    await _decided(store, "d1")
    try:
        learner = _learner(store)
        batch = [_record(0, "d1", "clicked"), _record(1, "d1", "accepted")]
        await learner._learn(0, batch)
        restarted = _learner(store)
        await restarted._learn(0, batch)
        alone = _learner(store)
        alone._model.learn_one(_context(await _one_context(store)), "book-club", 1.0)
        assert _same(learner._model, alone._model) and _same(restarted._model, alone._model)
    finally:
        await store.close()


async def _one_context(store: FeatureStore) -> str:
    (context,) = await store.decisions.contexts([("c1", "d1")])
    assert context is not None
    return context


async def test_an_impression_on_two_partitions_read_again_in_the_other_order(
    kafka_redis: Services,
) -> None:
    """clicked on partition 0, accepted on partition 1, learned; restarted from the
    snapshot before both (its arm empty), the learner reads partition 1 first: the
    accepted's ``relabel_again`` learned the example afresh, and the clicked read next
    learned it again (n 2, b 1.3 x)."""
    store = _store(kafka_redis)
    await _decided(store, "d1")
    clicked, accepted = _record(0, "d1", "clicked"), _record(1, "d1", "accepted")
    accepted.partition = 1
    try:
        first = _learner(store)
        await first._learn(0, [clicked])
        await first._learn(1, [accepted])
        restarted = _learner(store)
        await restarted._learn(1, [accepted])
        await restarted._learn(0, [clicked])
        alone = _learner(store)
        alone._model.learn_one(_context(await _one_context(store)), "book-club", 1.0)
        assert _same(first._model, alone._model) and _same(restarted._model, alone._model)
        assert _figure(restarted, "relearned") == 2 and _figure(restarted, "learned") == 0
    finally:
        await store.close()


async def test_an_outcome_that_cannot_teach_leaves_its_impression_to_the_next(
    kafka_redis: Services,
) -> None:
    """An outcome dated before its decision teaches nothing (a client's wrong clock or
    decision id): claimed with the reward of its kind, the impression's later acceptance
    relabelled an example never learned (its reward added to the arm without its
    context's design)."""
    store = _store(kafka_redis)
    await _decided(store, "d1")
    early = _record(0, "d1", "clicked")
    early.value = encode_outcome(Outcome(decision_id="d1", customer_id="c1",
                                         offer_id="book-club", outcome="clicked",
                                         ts=DECIDED - timedelta(hours=2)))  # fmt: skip
    try:
        learner = _learner(store)
        await learner._learn(0, [early, _record(1, "d1", "accepted")])
        alone = _learner(store)
        alone._model.learn_one(_context(await _one_context(store)), "book-club", 1.0)
        assert _same(learner._model, alone._model)
        assert _figure(learner, "dated_before_decision") == 1
        assert _figure(learner, "learned") == 1 and _figure(learner, "relabelled") == 0
    finally:
        await store.close()


async def test_an_outcome_whose_context_the_learner_did_not_find_is_not_claimed(
    kafka_redis: Services,
) -> None:
    """The learner reads the contexts, then claims: one that came in between is sent
    back (to be learned with it), not claimed as an outcome that taught nothing."""
    store = _store(kafka_redis)
    await _decided(store, "d1")
    claims = [("c1", "d1", "d1:book-club:clicked", "0:1")]
    try:
        assert await store.decisions.claim_outcomes(claims, unread={0}) == ["no_context"]
        assert (await store.export("c1")).outcomes == {}
        assert await store.decisions.claim_outcomes(claims) == ["learn"]
        # read again: claimed before, whatever the learner found
        assert await store.decisions.claim_outcomes(claims, unread={0}) == ["relearn"]
    finally:
        await store.close()
