"""Why the churn-risk model answers with its baseline, shown as
``moments_model_baseline_reason{model,reason}``, and the examples it has learned
(``moments_model_examples``). ``moments_model_fallback`` alone could not tell a young
deployment's warm-up (a month, by design) from a model stuck on its baseline after a
drift: MomentsModelOnBaseline fired on every new deployment for its first month."""

from __future__ import annotations

from types import SimpleNamespace

from agents.risk import ChurnRisk
from agents.risk_watch import RiskHolder
from streams.metrics import Metrics
from streams.risk_learner import RiskLearner

HAPPY, UNHAPPY = (
    {"experience": 0.9, "complaints_30d": 0.0},
    {"experience": 0.1, "complaints_30d": 3.0},
)


def shown(metrics: Metrics) -> tuple[float | None, float | None, float | None, float | None]:
    """fallback, warming_up, drift_detected, examples of the risk model."""
    value = metrics.registry.get_sample_value
    return (value("moments_model_fallback", {"model": "risk"}),
            value("moments_model_baseline_reason", {"model": "risk", "reason": "warming_up"}),
            value("moments_model_baseline_reason", {"model": "risk", "reason": "drift_detected"}),
            value("moments_model_examples", {"model": "risk"}))  # fmt: skip


def learner_of(metrics: Metrics, model: ChurnRisk) -> RiskLearner:
    learner = RiskLearner(SimpleNamespace(), RiskHolder(), metrics, "", "risk-examples")  # type: ignore[arg-type]
    learner._start(model.to_dict(), 1)
    return learner


def test_a_new_model_shows_it_is_warming_up_with_no_example() -> None:
    metrics = Metrics()
    learner = RiskLearner(SimpleNamespace(), RiskHolder(), metrics, "", "risk-examples")  # type: ignore[arg-type]
    learner._start(None, 0)
    assert shown(metrics) == (1.0, 1.0, 0.0, 0.0)


def test_a_model_that_serves_and_one_after_a_drift_say_so() -> None:
    model = ChurnRisk(warmup=4)
    for _ in range(3):
        model.learn_one(UNHAPPY, True)
        model.learn_one(HAPPY, False)
    assert model.reason == "model"
    metrics = Metrics()
    learner_of(metrics, model)
    assert shown(metrics) == (0.0, 0.0, 0.0, 6.0)

    model.drifts += 1  # what learn_one does on a drift: a new model, relearning
    model._new_model()
    assert model.reason == "drift_detected"
    learner_of(metrics, model)
    assert shown(metrics) == (1.0, 0.0, 1.0, 6.0)


def test_a_worker_that_no_longer_leads_drops_them() -> None:
    metrics = Metrics()
    metrics.model_on_baseline("risk", "warming_up", 12)
    metrics.forget_model_quality("risk")
    assert shown(metrics) == (None, None, None, None)
