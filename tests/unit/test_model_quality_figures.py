"""The learners' quality figures: none while nothing was scored (a learner just started,
or just become the leader, that has read only outcomes it does not score, or copies),
rather than a log loss of 0, which reads as a perfect model and drags the alert's
six-hour average down."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from agents.risk_watch import RiskHolder
from schemas.risk import RiskExample, encode_risk_example
from streams.metrics import Metrics
from streams.risk_learner import RiskLearner
from tests.unit.test_learner_runs import Tombstones
from tests.unit.test_outcome_counts import Claims, learner_on
from tests.unit.test_outcome_letters import _outcome as outcome_record


def logloss(metrics: Metrics, model: str) -> float | None:
    return metrics.registry.get_sample_value("moments_model_logloss", {"model": model})


async def test_an_offer_learner_that_scored_nothing_shows_no_log_loss() -> None:
    metrics = Metrics()
    learner = learner_on(Claims(), metrics)
    await learner._learn(0, [outcome_record(1, "shown"), outcome_record(2, "shown")])  # not scored
    assert logloss(metrics, "nbo") is None


async def test_a_risk_learner_that_read_only_copies_shows_no_log_loss() -> None:
    class Models:
        async def claim_examples(self, model: str, pairs: list[Any]) -> list[str]:
            return ["copy" for _ in pairs]  # learned before, from the record that claimed it

    metrics = Metrics()
    shared = SimpleNamespace(models=Models(), erased_subjects=Tombstones())
    learner = RiskLearner(shared, RiskHolder(), metrics, "", "risk-examples")  # type: ignore[arg-type]
    learner._start(None, 0)  # type: ignore[arg-type]
    now = datetime.now(UTC)
    example = RiskExample(example_id="risk:abc:1", x={"experience": 0.2}, y=True,
                          snapshot_ts=now, label_ts=now)  # fmt: skip
    record = SimpleNamespace(topic="risk-examples", partition=0, offset=5, key=None,
                             value=encode_risk_example(example), headers=[])  # fmt: skip
    await learner._learn(0, [record])
    assert logloss(metrics, "risk") is None


def test_a_figure_once_shown_goes_when_none_is_left() -> None:
    metrics = Metrics()
    metrics.model_figure(metrics.model_logloss, "risk", 0.4)
    metrics.model_figure(metrics.model_rocauc, "risk", 0.8)
    rocauc = metrics.registry.get_sample_value("moments_model_rocauc", {"model": "risk"})
    assert (logloss(metrics, "risk"), rocauc) == (0.4, 0.8)
    metrics.model_figure(metrics.model_logloss, "risk", None)
    metrics.model_figure(metrics.model_rocauc, "risk", None)
    rocauc = metrics.registry.get_sample_value("moments_model_rocauc", {"model": "risk"})
    assert (logloss(metrics, "risk"), rocauc) == (None, None)


def test_a_risk_learner_says_it_is_on_its_baseline_before_any_example() -> None:
    """A leader whose model is warming up, with no labelled example arriving (what the
    alert on the baseline is there to tell), showed no series: the alert could not fire."""
    metrics = Metrics()
    learner = RiskLearner(SimpleNamespace(), RiskHolder(), metrics, "", "risk-examples")  # type: ignore[arg-type]
    learner._start(None, 0)
    value = metrics.registry.get_sample_value
    assert value("moments_model_fallback", {"model": "risk"}) == 1.0
    assert value("moments_model_drifts", {"model": "risk"}) == 0.0
    assert logloss(metrics, "risk") is None  # nothing scored yet: no figure
