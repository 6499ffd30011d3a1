"""One shown offer is one example: a later, stronger outcome of it (``clicked``, then
``accepted``; a timeout's ``ignored``, then a late ``accepted``) relabels the example
learned instead of adding one, which taught the bandit twice for one impression and
over-rated the offers of surfaces that report the funnel. The relabel is exact for ridge
regression (the design matrix depends on the contexts alone); the log loss scores an
impression once; the learner counts it ``relabelled`` once, also when the claim's reply
was lost. (``claim.lua`` itself is checked on Redis in
``tests/integration/test_impression_claims.py``.)"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from agents.bandit import REANCHOR_EVERY, LinUCBOffers
from agents.context import DIMENSION
from agents.learned_policy import ModelHolder
from agents.learning import REWARDS, RewardLogLoss
from feature_store import RepliesUnknown
from feature_store.decision_log import Claim
from schemas import NextBestOffer, OfferScore, encode_decision
from streams.metrics import Metrics
from streams.offer_learner import OfferLearner
from tests.unit.learner_acceptances import Acceptances


def test_a_relabelled_example_predicts_as_one_learned_with_the_stronger_reward() -> None:
    """Over many arms' outcomes, through re-anchors (every REANCHOR_EVERY of an arm): the
    clicked impressions that were accepted later read as if only accepted was learned."""
    rng = random.Random(3)
    shown = [([1.0] + [rng.random() for _ in range(DIMENSION - 1)], "a" if i % 3 else "b",
              rng.random() < 0.3) for i in range(REANCHOR_EVERY + 500)]  # fmt: skip
    funnel, once = LinUCBOffers(DIMENSION), LinUCBOffers(DIMENSION)
    for x, arm, accepted in shown:
        if accepted:  # clicked, then accepted
            funnel.learn_one(x, arm, 0.3)
            funnel.relabel(x, arm, 0.3, 1.0)
        else:
            funnel.learn_one(x, arm, 0.0)
        once.learn_one(x, arm, 1.0 if accepted else 0.0)  # reported once, its strongest
    contexts = [x for x, _, _ in shown]
    assert funnel.updates == once.updates == REANCHOR_EVERY + 500
    for arm in ("a", "b"):
        assert funnel.arms[arm].n == once.arms[arm].n
        assert np.allclose(funnel.arms[arm].b, once.arms[arm].b, atol=1e-9)
    for x in contexts[:50]:
        for arm in ("a", "b"):
            assert funnel.predict_one(x, arm) == pytest.approx(once.predict_one(x, arm), abs=1e-9)
        # ranking reads the relabelled estimates too (not ones stacked before the relabel;
        # a ranked estimate is rounded to 6 places)
        ranked = {r.arm: r.estimate for r in funnel.rank(x, ["a", "b"], {}, "s", limit=2)}
        assert ranked == pytest.approx({a: once.predict_one(x, a) for a in ("a", "b")}, abs=1e-6)


def test_a_relabel_is_seen_by_a_ranking_stacked_before_it() -> None:
    model = LinUCBOffers(2, alpha=0.0, epsilon=0.0)
    model.learn_one([1.0, 0.0], "a", 0.3)
    assert model.rank([1.0, 0.0], ["a"], {}, "s")[0].estimate == pytest.approx(0.15)
    model.relabel([1.0, 0.0], "a", 0.3, 1.0)
    assert model.rank([1.0, 0.0], ["a"], {}, "s")[0].estimate == pytest.approx(0.5)


def test_a_relabel_read_before_its_first_outcome_teaches_one_example() -> None:
    """A learner restarted from a snapshot whose arm held no example may read an
    impression's relabel (accepted, on one partition) before its first outcome (clicked,
    on another): the relabel learned the example afresh, with 1.0, and the clicked read
    next learned it again, with 0.3 (n 2, b 1.3 x)."""
    x = [1.0, 0.5]
    replayed, once = LinUCBOffers(2), LinUCBOffers(2)
    replayed.relabel(x, "new-offer", 0.3, 1.0, at=5.0)
    assert replayed.arms["new-offer"].n == 0 and replayed.updates == 0
    assert replayed.predict_one(x, "new-offer") == replayed.prior  # unseen until then
    restored = LinUCBOffers.from_dict(replayed.to_dict())  # a snapshot taken in between
    for model in (replayed, restored):
        model.learn_one(x, "new-offer", 0.3)
    once.learn_one(x, "new-offer", 1.0)
    for model in (replayed, restored):
        assert model.arms["new-offer"].n == 1 and model.updates == 1
        assert np.allclose(model.arms["new-offer"].b, once.arms["new-offer"].b)
        assert np.allclose(model.arms["new-offer"].a, once.arms["new-offer"].a)
        assert model.predict_one(x, "new-offer") == pytest.approx(
            once.predict_one(x, "new-offer"), abs=1e-12
        )


def test_the_log_loss_scores_an_impression_once_by_its_strongest_outcome() -> None:
    funnel, once = RewardLogLoss(window=3), RewardLogLoss(window=3)
    funnel.update(0.3, 0.4, "d1:a")
    funnel.update(0.0, 0.2, "d2:a")
    funnel.relabel("d1:a", 1.0)
    once.update(1.0, 0.4)
    once.update(0.0, 0.2)
    assert funnel.get() == once.get() and funnel.n == once.n == 2
    for n in range(3, 6):  # d1 leaves the window: relabelling it changes nothing
        funnel.update(0.0, 0.2, f"d{n}:a")
        once.update(0.0, 0.2)
    funnel.relabel("d1:a", 0.0)
    funnel.relabel("d9:a", 1.0)  # never scored (learned before the learner started)
    assert funnel.get() == once.get()


class Impressions:
    """Claims as ``claim.lua`` makes them, per shown offer; ``lose_after``: the next
    round trip runs in full, but only that many replies come before the connection goes."""

    def __init__(self) -> None:
        self.made: dict[str, list[tuple[str, str, float | None]]] = {}
        self.lose_after: int | None = None

    async def claim_outcomes(
        self,
        claims: list[Any],
        faults: Any = None,
        ran: dict[int, Claim] | None = None,
        before: dict[int, float] | None = None,
        teaches: list[float | None] | None = None,
        **_: Any,
    ) -> list[Claim]:
        before = {} if before is None else before
        answers: list[Claim] = []
        for i, (_, _, what, source) in enumerate(claims):
            impression, _, kind = what.rpartition(":")
            made = self.made.setdefault(impression, [])
            taught = REWARDS.get(kind) if teaches is None else teaches[i]
            answers.append(self._claim(i, made, source, kind, taught, before))
        came, self.lose_after = self.lose_after, None
        if came is not None:
            if ran is not None:
                ran.update(enumerate(answers[:came]))
            raise RepliesUnknown("ConnectionError: reset", range(came, len(claims)))
        return answers

    @staticmethod
    def _claim(
        i: int,
        made: list[tuple[str, str, float | None]],
        source: str,
        kind: str,
        reward: float | None,
        before: dict[int, float],
    ) -> Claim:
        def verdict(at: int, reward: float | None, again: bool) -> Claim:
            learned = [r for _, _, r in made[:at] if r is not None]
            if reward is None or not learned:
                return "relearn" if again else "learn"
            if reward > max(learned):
                before[i] = max(learned)
                return "relabel_again" if again else "relabel"
            return "superseded_again" if again else "superseded"

        for at, (claimed_by, _, claimed) in enumerate(made):
            if claimed_by == source:
                return verdict(at, claimed, again=True)
        if any(k == kind for _, k, _ in made):
            return "skip"
        made.append((source, kind, reward))
        return verdict(len(made) - 1, reward, again=False)

    async def contexts(self, pairs: list[Any], faults: Any = None) -> list[str | None]:
        made = NextBestOffer(decision_id="d-1", customer_id="c-1", ts=DECIDED, channel="web",
                             trigger_event_id=None, context=[0.5] * DIMENSION,
                             offers=[OfferScore(offer_id="book-club", score=0.4,
                                                propensity=1.0)])  # fmt: skip
        return [encode_decision(made).decode() for _ in pairs]


DECIDED = datetime(2026, 12, 1, 9, 59, tzinfo=UTC)


def record(offset: int, verdict: str) -> SimpleNamespace:
    value = (f'{{"decision_id": "d-1", "customer_id": "c-1", "offer_id": "book-club", '
             f'"outcome": "{verdict}", "ts": "2026-12-01T10:00:00Z"}}').encode()  # fmt: skip
    return SimpleNamespace(topic="offer-outcomes", partition=0, offset=offset, key=b"c-1",
                           value=value, headers=[])  # fmt: skip


def learner_on(claims: Impressions, metrics: Metrics) -> OfferLearner:
    async def dead_letter(**letter: Any) -> Awaitable[None]:
        return asyncio.sleep(0)

    store = SimpleNamespace(decisions=claims, acceptances=Acceptances())
    learner = OfferLearner(store, ModelHolder(), metrics, "", "offer-outcomes",  # type: ignore[arg-type]
                           dead_letter)  # fmt: skip
    learner._start(None, 0)
    return learner


def figure(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0


def accepted_once() -> LinUCBOffers:
    model = LinUCBOffers(DIMENSION)
    model.learn_one([0.5] * DIMENSION, "book-club", 1.0)
    return model


@pytest.mark.parametrize("first", ["clicked", "ignored"])
async def test_a_funnel_teaches_its_impression_once(first: str) -> None:
    """58 updates for 29 impressions before: each reported clicked, then accepted."""
    metrics = Metrics()
    learner = learner_on(Impressions(), metrics)
    assert await learner._learn(0, [record(1, first), record(2, "accepted")]) == 2
    await learner._learn(0, [record(3, "dismissed"), record(4, "accepted")])  # after: nothing
    model, x = learner._model, [0.5] * DIMENSION
    assert model.updates == 1 and model.arms["book-club"].n == 1
    assert model.predict_one(x, "book-club") == accepted_once().predict_one(x, "book-club")
    assert figure(metrics, "moments_learning_outcomes_total", result="learned") == 1
    assert figure(metrics, "moments_learning_outcomes_total", result="relabelled") == 1
    assert figure(metrics, "moments_learning_outcomes_total", result="superseded") == 1
    assert figure(metrics, "moments_learning_outcomes_total", result="duplicate") == 1
    for verdict in (first, "accepted", "dismissed"):  # each outcome counted once
        assert figure(metrics, "moments_outcomes_total", outcome=verdict) == 1
    assert learner._logloss.n == 1  # the impression scored once


async def test_a_learner_restarted_before_the_relabel_redoes_it_once() -> None:
    metrics, claims = Metrics(), Impressions()
    learner = learner_on(claims, metrics)
    await learner._learn(0, [record(1, "clicked")])
    clicked = learner._model.to_dict()  # the snapshot published then
    await learner._learn(0, [record(2, "accepted")])
    for state in (clicked, None):  # restarted from it, or from none at all
        learner._start(state, 0)
        unread = [record(2, "accepted")] if state else [record(1, "clicked"), record(2, "accepted")]
        await learner._learn(0, unread)
        x = [0.5] * DIMENSION
        assert learner._model.updates == 1
        assert learner._model.predict_one(x, "book-club") == pytest.approx(
            accepted_once().predict_one(x, "book-club"), abs=1e-12
        )
    assert figure(metrics, "moments_learning_outcomes_total", result="relabelled") == 1
    assert figure(metrics, "moments_learning_outcomes_total", result="relearned") == 3


@pytest.mark.parametrize("relabel_read_before", [True, False])
async def test_a_learner_restarted_reads_an_impression_on_two_partitions_in_any_order(
    relabel_read_before: bool,
) -> None:
    """clicked on partition 0, accepted on partition 1, the snapshot before both, the
    arm empty in it: read again in either order, and whether the learner that stopped
    had read the accepted (``relabel_again``) or not (a new ``relabel``), the restarted
    model learned the impression once, with 1.0."""
    metrics, claims = Metrics(), Impressions()
    learner = learner_on(claims, metrics)
    empty = learner._model.to_dict()
    clicked, accepted = record(1, "clicked"), record(2, "accepted")
    await learner._learn(0, [clicked])
    if relabel_read_before:
        await learner._learn(1, [accepted])
    x = [0.5] * DIMENSION
    for first, then in (((1, accepted), (0, clicked)), ((0, clicked), (1, accepted))):
        learner._start(empty, 0)
        for partition, read in (first, then):
            await learner._learn(partition, [read])
        model = learner._model
        assert model.updates == 1 and model.arms["book-club"].n == 1, (first, then)
        assert model.predict_one(x, "book-club") == pytest.approx(
            accepted_once().predict_one(x, "book-club"), abs=1e-12
        )


async def test_a_relabel_whose_reply_was_lost_is_counted_once_as_relabelled() -> None:
    metrics, claims = Metrics(), Impressions()
    learner = learner_on(claims, metrics)
    await learner._learn(0, [record(1, "clicked")])
    claims.lose_after = 0  # the relabel is made, its reply lost
    with pytest.raises(RepliesUnknown):
        await learner._learn(0, [record(2, "accepted")])
    await learner._learn(0, [record(2, "accepted")])  # read again: "relabel_again"
    assert figure(metrics, "moments_learning_outcomes_total", result="relabelled") == 1
    assert figure(metrics, "moments_learning_outcomes_total", result="relearned") == 0
    assert figure(metrics, "moments_outcomes_total", outcome="accepted") == 1
