"""A learner hands its process a copy of what it published: the leader scores with
snapshot N, as every other worker does, not with the model still learning."""

from __future__ import annotations

from typing import Any

from agents.learned_policy import DIMENSION, ModelHolder
from agents.risk_watch import RiskHolder
from streams.learner import Learner, RiskLearner


def test_the_leader_scores_with_the_offer_model_it_published() -> None:
    holder = ModelHolder()
    learner = Learner(None, holder, None, "", "", None)  # type: ignore[arg-type]
    learner._start(None, 7)
    x = [0.5] * DIMENSION
    before = holder.model.predict_one(x, "promo")
    for _ in range(50):
        learner._model.learn_one(x, "promo", 1.0)  # learning, not yet published
    assert holder.model.predict_one(x, "promo") == before and holder.version == 7
    learner._published(8)
    assert holder.model.predict_one(x, "promo") > before and holder.version == 8
    assert holder.model is not learner._model


def test_the_leader_scores_with_the_risk_model_it_published() -> None:
    holder = RiskHolder()
    learner = RiskLearner(None, holder, None, "", "")  # type: ignore[arg-type]
    learner._start(None, 3)
    x: dict[str, Any] = {"days_since_last": 40.0, "complaints_30d": 2.0}
    before = holder.model.predict_one(x)
    for _ in range(200):
        learner._model.learn_one(x, True)
    assert holder.model.predict_one(x) == before and holder.version == 3
    learner._published(4)
    assert holder.model.predict_one(x) == learner._model.predict_one(x)
    assert holder.model is not learner._model
