"""A learner hands its process a copy of what it published: the leader scores with
snapshot N, as every other worker does, not with the model still learning."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from agents.bandit import LinUCBOffers
from agents.context import FIRST_LAYOUT, widened
from agents.learned_policy import DIMENSION, ModelHolder
from agents.learning import Example, judged
from agents.risk_watch import RiskHolder
from schemas import NextBestOffer, OfferScore, Outcome, encode_decision
from streams.metrics import Metrics
from streams.model_snapshots import Snapshot, restore
from streams.offer_learner import OfferLearner
from streams.risk_learner import RiskLearner


def test_the_leader_scores_with_the_offer_model_it_published() -> None:
    holder = ModelHolder()
    learner = OfferLearner(None, holder, None, "", "", None)  # type: ignore[arg-type]
    learner._start(None, 7)
    x = [0.5] * DIMENSION
    before = holder.model.predict_one(x, "promo")
    for _ in range(50):
        learner._model.learn_one(x, "promo", 1.0)  # learning, not yet published
    assert holder.model.predict_one(x, "promo") == before and holder.version == 7
    learner._published(8)
    assert holder.model.predict_one(x, "promo") > before and holder.version == 8
    assert holder.model is not learner._model


def test_the_offer_learner_writes_lists_for_older_readers_when_told() -> None:
    """MOMENTS_MODEL_SNAPSHOT_FIGURES=lists: the snapshot a Moments from before packed
    figures can read, while it may still lead or load the model."""
    for packed, kind in ((True, str), (False, list)):
        learner = OfferLearner(None, ModelHolder(), None, "", "", None, packed=packed)  # type: ignore[arg-type]
        learner._start(None, 1)
        learner._model.learn_one([0.5] * DIMENSION, "promo", 1.0)
        state = learner._state()
        assert all(isinstance(state["arms"]["promo"][m], kind) for m in ("a", "a_inv", "b"))
        assert LinUCBOffers.from_dict(state).to_dict() == learner._model.to_dict()


async def test_the_leader_scores_with_the_risk_model_it_published() -> None:
    holder = RiskHolder()
    learner = RiskLearner(None, holder, Metrics(), "", "")  # type: ignore[arg-type]
    learner._start(None, 3)
    x: dict[str, Any] = {"experience": 0.1, "complaints_30d": 2.0}
    before = holder.model.predict_one(x)
    model = await learner._loaded()
    for _ in range(200):
        model.learn_one(x, True)
        model.learn_one({"experience": 0.9}, False)
    assert holder.model.predict_one(x) == before and holder.version == 3
    learner._published(4)
    assert model.reason == holder.model.reason == "model"
    assert holder.model.predict_one(x) == model.predict_one(x) != before


def test_a_snapshot_of_the_first_context_layout_is_widened_and_learns_on() -> None:
    """Features were added to the context since a snapshot was published (the sms
    channel): processes restore it widened, it scores as before where the new features
    are 0, and decisions stored with the shorter context still teach it."""
    old = LinUCBOffers(FIRST_LAYOUT, alpha=0.0, epsilon=0.0)
    short = [1.0] + [0.3] * (FIRST_LAYOUT - 1)
    for _ in range(30):
        old.learn_one(short, "promo", 1.0)
    payload = msgspec.json.encode(
        Snapshot(model=old.to_dict(), offsets={"0": 12}, updated_at=datetime.now(UTC))
    ).decode()
    model, offsets = restore(payload)
    assert model.dimension == DIMENSION and offsets == {0: 12}
    assert model.predict_one(widened(short), "promo") == old.predict_one(short, "promo")
    learner = OfferLearner(None, ModelHolder(), None, "", "", None)  # type: ignore[arg-type]
    learner._start(old.to_dict(), 5)
    sms = [*widened(short)[:-1], 1.0]  # a new decision, by text message
    learner._model.learn_one(sms, "promo", 0.0)
    promo = OfferScore(offer_id="promo", score=1.0, propensity=1.0)
    older = NextBestOffer(decision_id="d-old", customer_id="c", ts=datetime.now(UTC),
                          channel="web", trigger_event_id=None, context=short,
                          offers=[promo])  # fmt: skip
    outcome = Outcome(decision_id="d-old", customer_id="c", offer_id="promo",
                      outcome="accepted", ts=datetime.now(UTC))  # fmt: skip
    example = judged(outcome, encode_decision(older).decode()).example
    assert isinstance(example, Example) and example.x == widened(short)
    learner._model.learn_one(example.x, example.arm, example.reward)  # an older context
    assert learner._model.updates == 32
    assert learner._model.predict_one(sms, "promo") < learner._model.predict_one(
        widened(short), "promo"
    )


def test_offers_gone_from_the_catalogue_leave_the_published_model_once_idle() -> None:
    """Every arm ever learned stayed in every snapshot: with campaigns rotating, each
    process reloaded (and each ranking scored) more arms month after month."""
    import time

    from streams.offer_learner import ARM_IDLE_S

    offered = {"summer"}
    learner = OfferLearner(None, ModelHolder(), None, "", "", None,  # type: ignore[arg-type]
                           offered=lambda: offered)  # fmt: skip
    learner._start(None, 1)
    x, now = [0.5] * DIMENSION, time.time()
    learner._model.learn_one(x, "summer", 1.0, at=now - 2 * ARM_IDLE_S)  # still offered
    learner._model.learn_one(x, "spring", 1.0, at=now - 2 * ARM_IDLE_S)  # retired, idle
    learner._model.learn_one(x, "winter", 1.0, at=now - 60)  # retired, outcomes still come
    state = learner._state()
    assert sorted(state["arms"]) == ["summer", "winter"]
    restored = LinUCBOffers.from_dict(state)  # the times go with the snapshot
    assert restored.arms["winter"].at == learner._model.arms["winter"].at
