"""Each claimed outcome is counted in ``moments_outcomes_total`` once, also when Redis made
the claim but the connection went before its reply came: the learner restarts, reads the
record again, and the claim answers that this record made it before ("relearn"). That
one was counted nowhere, and now is; one counted when it was first claimed is not."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from agents.context import DIMENSION
from agents.learned_policy import ModelHolder
from feature_store import RepliesUnknown, StoreUnavailable
from feature_store.decision_log import Claim
from schemas import NextBestOffer, OfferScore, encode_decision
from streams.metrics import Metrics
from streams.offer_learner import OfferLearner
from tests.unit.learner_acceptances import Acceptances


class Claims:
    """Claims as ``claim.lua`` makes them; ``lose_after``: the next round trip runs in
    full, but only that many replies come before the connection goes."""

    def __init__(self) -> None:
        self.made: dict[str, str] = {}  # what -> the source record that claimed it
        self.lose_after: int | None = None

    async def claim_outcomes(
        self,
        claims: list[Any],
        faults: Any = None,
        ran: dict[int, Claim] | None = None,
        **_: Any,
    ) -> list[Claim]:
        answers: list[Claim] = []
        for _, _, what, source in claims:
            if what not in self.made:
                self.made[what] = source
                answers.append("learn")
            else:
                answers.append("relearn" if self.made[what] == source else "skip")
        came, self.lose_after = self.lose_after, None
        if came is not None:
            if ran is not None:
                ran.update(enumerate(answers[:came]))
            raise RepliesUnknown("ConnectionError: reset", range(came, len(claims)))
        return answers

    async def contexts(self, pairs: list[Any], faults: Any = None) -> list[str | None]:
        return [None for _ in pairs]


DECIDED = datetime(2026, 12, 1, 9, 59, tzinfo=UTC)  # a minute before its outcomes


def outcome(offset: int, decision: str) -> SimpleNamespace:
    value = (f'{{"decision_id": "{decision}", "customer_id": "c-1", "offer_id": "book-club", '
             f'"outcome": "clicked", "ts": "2026-12-01T10:00:00Z"}}').encode()  # fmt: skip
    return SimpleNamespace(topic="offer-outcomes", partition=0, offset=offset, key=b"c-1",
                           value=value, headers=[])  # fmt: skip


def learner_on(claims: Claims, metrics: Metrics) -> OfferLearner:
    async def dead_letter(**letter: Any) -> Awaitable[None]:
        return asyncio.sleep(0)

    async def nobody_erased(customer_ids: list[str]) -> list[bool]:
        return [False for _ in customer_ids]

    store = SimpleNamespace(decisions=claims, erased=nobody_erased, acceptances=Acceptances())
    learner = OfferLearner(store, ModelHolder(), metrics, "", "offer-outcomes",  # type: ignore[arg-type]
                           dead_letter)  # fmt: skip
    learner._start(None, 0)
    return learner


def counted(metrics: Metrics) -> float:
    return metrics.registry.get_sample_value("moments_outcomes_total", {"outcome": "clicked"}) or 0


@pytest.mark.parametrize("came", [0, 1, 2])
async def test_a_claim_whose_reply_was_lost_is_counted_once_when_read_again(came: int) -> None:
    claims, metrics = Claims(), Metrics()
    learner = learner_on(claims, metrics)
    records = [outcome(1, "d-1"), outcome(2, "d-2")]
    claims.lose_after = came
    with pytest.raises(RepliesUnknown):
        await learner._learn(0, records)
    learner._start(None, 0)  # restarted from its snapshot, which lacks both
    await learner._learn(0, records)
    assert counted(metrics) == 2
    learner._start(None, 0)  # and again: both were counted
    await learner._learn(0, records)
    assert counted(metrics) == 2


async def test_an_outcome_counted_when_claimed_is_not_counted_when_read_again() -> None:
    claims, metrics = Claims(), Metrics()
    learner = learner_on(claims, metrics)
    await learner._learn(0, [outcome(1, "d-1")])
    claims.lose_after = 1  # the second record's reply is lost: the first's came
    with pytest.raises(RepliesUnknown):
        await learner._learn(0, [outcome(1, "d-1"), outcome(2, "d-2")])
    learner._start(None, 0)
    await learner._learn(0, [outcome(1, "d-1"), outcome(2, "d-2")])
    assert counted(metrics) == 2


class ContextsOnceDown(Claims):
    """Claims as Redis makes them; the decisions' contexts cannot be read the first time
    (the connection goes; the learner reads them before it claims)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True

    async def contexts(self, pairs: list[Any], faults: Any = None) -> list[str | None]:
        if self.down:
            self.down = False
            raise StoreUnavailable("connection reset")
        made = NextBestOffer(decision_id="d-1", customer_id="c-1", ts=DECIDED,
                             channel="web", trigger_event_id=None,
                             offers=[OfferScore(offer_id="book-club", score=0.4,
                                                 propensity=1.0)])  # fmt: skip
        return [encode_decision(made).decode() for _ in pairs]


async def test_an_outcome_claimed_before_a_failure_is_counted_by_offer_too() -> None:
    """The contexts could not be read: read again, the outcome is counted, by offer too,
    once. (When the learner claimed before it read the contexts, the claim answered
    "relearn", and the outcome was counted in moments_outcomes_total but never by offer.)"""
    claims, metrics = ContextsOnceDown(), Metrics()
    learner = learner_on(claims, metrics)
    with pytest.raises(StoreUnavailable):
        await learner._learn(0, [outcome(1, "d-1")])
    assert counted(metrics) == 0  # counted once it is learned, not when it is claimed
    learner._start(None, 0)  # restarted from its snapshot
    await learner._learn(0, [outcome(1, "d-1")])
    by_offer = {"offer": "book-club", "channel": "web", "outcome": "clicked"}
    assert counted(metrics) == 1
    assert metrics.registry.get_sample_value("moments_offer_outcomes_total", by_offer) == 1
    await learner._learn(0, [outcome(1, "d-1")])  # read once more: counted already
    assert counted(metrics) == 1
    assert metrics.registry.get_sample_value("moments_offer_outcomes_total", by_offer) == 1


def test_every_outcome_is_counted_from_zero() -> None:
    """A series born holding a whole batch is no increase to Prometheus: a new leader's
    first dismissals went unseen, and the alert on outcomes with no negatives fired."""
    metrics = Metrics()
    for kind in ("shown", "clicked", "accepted", "dismissed", "ignored"):
        assert metrics.registry.get_sample_value("moments_outcomes_total", {"outcome": kind}) == 0


class Learnable(Claims):
    """Claims as Redis makes them, and decisions the model made (with its features)."""

    async def contexts(self, pairs: list[Any], faults: Any = None) -> list[str | None]:
        made = NextBestOffer(decision_id="d-1", customer_id="c-1", ts=DECIDED,
                             channel="web", trigger_event_id=None, context=[0.5] * DIMENSION,
                             offers=[OfferScore(offer_id="book-club", score=0.4,
                                                 propensity=1.0)])  # fmt: skip
        return [encode_decision(made).decode() for _ in pairs]


def learning(metrics: Metrics, result: str) -> float:
    found = metrics.registry.get_sample_value("moments_learning_outcomes_total", {"result": result})
    return found or 0


async def test_an_outcome_learned_again_after_a_restart_is_counted_relearned() -> None:
    """Restarted from a snapshot that lacks them (killed, or a rebalance), the learner
    reads outcomes it learned before and learns them again, its model having lost them:
    ``result="relearned"``, not ``learned`` once more, which counted them at every restart."""
    claims, metrics = Learnable(), Metrics()
    learner = learner_on(claims, metrics)
    records = [outcome(1, "d-1"), outcome(2, "d-2")]
    assert await learner._learn(0, records) == 2
    for restart in (1, 2):
        learner._start(None, 0)  # restarted from its snapshot, which lacks both
        assert await learner._learn(0, records) == 2  # learned again: the model lacked them
        assert learning(metrics, "learned") == 2
        assert learning(metrics, "relearned") == 2 * restart
    assert counted(metrics) == 2


async def test_an_outcome_that_taught_nothing_is_not_counted_again_when_read_again() -> None:
    """One whose decision holds no model's features was counted (``no_model_context``)
    when it was claimed; read again after a restart, it is not counted again."""
    claims, metrics = ContextsOnceDown(), Metrics()
    claims.down = False
    learner = learner_on(claims, metrics)
    assert await learner._learn(0, [outcome(1, "d-1")]) == 0
    learner._start(None, 0)
    assert await learner._learn(0, [outcome(1, "d-1")]) == 0
    assert learning(metrics, "no_model_context") == 1
    assert learning(metrics, "relearned") == 0


class TwoOffers(Claims):
    """Claims as Redis makes them; each decision the model made listed two offers."""

    async def contexts(self, pairs: list[Any], faults: Any = None) -> list[str | None]:
        made = NextBestOffer(decision_id="d-1", customer_id="c-1", ts=DECIDED,
                             channel="web", trigger_event_id=None, context=[0.5] * DIMENSION,
                             offers=[OfferScore(offer_id="book-club", score=0.4,
                                                propensity=0.9),
                                     OfferScore(offer_id="free-shipping", score=0.3,
                                                propensity=0.1)])  # fmt: skip
        return [encode_decision(made).decode() for _ in pairs]


def outcome_of(offset: int, offer: str, verdict: str) -> SimpleNamespace:
    value = (f'{{"decision_id": "d-1", "customer_id": "c-1", "offer_id": "{offer}", '
             f'"outcome": "{verdict}", "ts": "2026-12-01T10:00:00Z"}}').encode()  # fmt: skip
    return SimpleNamespace(topic="offer-outcomes", partition=0, offset=offset, key=b"c-1",
                           value=value, headers=[])  # fmt: skip


async def test_only_the_first_offer_of_a_decision_teaches_and_both_are_counted() -> None:
    """The second offer was looked at less: learned as if shown first, its ignores sank
    it (position bias). It is counted, by offer too, as ``not_first_offer``."""
    claims, metrics = TwoOffers(), Metrics()
    learner = learner_on(claims, metrics)
    records = [outcome_of(1, "book-club", "dismissed"), outcome_of(2, "free-shipping", "ignored")]
    assert await learner._learn(0, records) == 1
    assert learner._model.updates == 1 and set(learner._model.arms) == {"book-club"}
    assert learning(metrics, "learned") == 1
    assert learning(metrics, "not_first_offer") == 1
    for offer, verdict in (("book-club", "dismissed"), ("free-shipping", "ignored")):
        by_offer = {"offer": offer, "channel": "web", "outcome": verdict}
        assert metrics.registry.get_sample_value("moments_offer_outcomes_total", by_offer) == 1
        total = metrics.registry.get_sample_value("moments_outcomes_total", {"outcome": verdict})
        assert total == 1
