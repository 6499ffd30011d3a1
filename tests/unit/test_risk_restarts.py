"""A churn-risk model restored from its snapshot watches for drift as the one before the
restart did, and its quality figures go on: its ADWIN started empty, took whatever error
regime came next for the baseline, and a concept flip within hundreds of examples of a
learner restart (a deploy, a leader change) went unseen for good; its log loss and ROC
AUC went blank."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import pytest

from agents.learning import QUALITY_WINDOW
from agents.risk import ChurnRisk
from agents.risk_scorer import RiskScorer

Example = tuple[dict[str, float], bool]


def examples(seed: int) -> Callable[[bool], Example]:
    """Churn rises with complaints; ``flipped``: it falls with them instead."""
    rng = random.Random(seed)

    def example(flipped: bool) -> Example:
        complaints = float(rng.randint(0, 4))
        p = 0.9 - 0.2 * complaints if flipped else 0.1 + 0.2 * complaints
        return {"experience": 0.5, "complaints_30d": complaints}, rng.random() < p

    return example


def reloaded(model: ChurnRisk) -> ChurnRisk:
    return ChurnRisk.from_dict(json.loads(json.dumps(model.to_dict())))


def detected_at(seed: int, restart: bool) -> int | None:
    """The flipped example at which the drift is detected (None: never, in 1,000)."""
    example = examples(seed)
    model = ChurnRisk(warmup=50)
    for _ in range(2000):
        model.learn_one(*example(False))
    if restart:
        model = reloaded(model)
    for i in range(1000):
        model.learn_one(*example(True))
        if model.drifts:
            return i
    return None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_restored_model_detects_a_concept_flip_as_the_one_not_restarted(seed: int) -> None:
    kept = detected_at(seed, restart=False)
    assert kept is not None and kept < 200
    restored = detected_at(seed, restart=True)
    assert restored is not None and restored < 200  # None in every seed, before


def test_the_restored_quality_figures_are_those_before_the_restart() -> None:
    example = examples(7)
    model = ChurnRisk(warmup=50)
    for _ in range(QUALITY_WINDOW + 300):
        model.learn_one(*example(False))
    restored = reloaded(model)
    assert restored.logloss == pytest.approx(model.logloss, abs=1e-12)
    assert restored.rocauc == model.rocauc is not None
    assert restored.to_dict() == model.to_dict()
    for _ in range(100):  # and they go on in step
        x, y = example(False)
        model.learn_one(x, y)
        restored.learn_one(x, y)
    assert restored.logloss == pytest.approx(model.logloss, abs=1e-12)
    assert restored.rocauc == model.rocauc


def test_a_snapshot_from_before_the_errors_were_kept_restores_with_them_empty() -> None:
    example = examples(8)
    model = ChurnRisk(warmup=50)
    for _ in range(300):
        model.learn_one(*example(False))
    state = model.to_dict()
    del state["errors"], state["scored"]
    restored = ChurnRisk.from_dict(state)
    assert restored.logloss is None and restored.rocauc is None
    assert restored.predict_one({"complaints_30d": 2.0}) == model.predict_one(
        {"complaints_30d": 2.0}
    )


def test_the_snapshot_keeps_the_errors_since_adwins_last_reset_only() -> None:
    example = examples(9)
    model = ChurnRisk(warmup=50)
    for _ in range(2000):
        model.learn_one(*example(False))
    assert len(model.to_dict()["errors"]) == QUALITY_WINDOW  # the newest
    while not model.drifts:
        model.learn_one(*example(True))
    assert model.to_dict()["errors"] == []  # the drift reset ADWIN: none of the old regime


BROKEN: dict[str, Callable[[dict[str, Any]], None]] = {
    "an error above 1": lambda state: state["errors"].append(1.5),
    "a negative error": lambda state: state["errors"].append(-0.1),
    "an error not a number": lambda state: state["errors"].append(float("nan")),
    "errors not a list": lambda state: state.update(errors={"0": 0.5}),
    "a prediction above 1": lambda state: state["scored"].append([True, 1.5]),
    "a label not true or false": lambda state: state["scored"].append([1, 0.5]),
}


@pytest.mark.parametrize("broken", BROKEN.values(), ids=list(BROKEN))
def test_a_snapshot_with_errors_no_model_saw_is_refused(
    broken: Callable[[dict[str, Any]], None],
) -> None:
    example = examples(10)
    model = ChurnRisk(warmup=50)
    for _ in range(100):
        model.learn_one(*example(False))
    state = json.loads(json.dumps(model.to_dict()))
    broken(state)
    with pytest.raises(ValueError, match="snapshot"):
        ChurnRisk.from_dict(state)


def test_the_scorer_of_a_snapshot_scores_as_the_model_that_published_it() -> None:
    """The API and the workers reload the published model every few seconds to score with
    it: as a RiskScorer, with neither river nor the replay of the kept errors and
    predictions (about 2 ms of their event loop at each reload)."""
    example = examples(3)
    model = ChurnRisk(warmup=50)
    for _ in range(1500):
        model.learn_one(*example(False))
    state = json.loads(json.dumps(model.to_dict()))
    scoring = RiskScorer.from_state(state)
    x = {"experience": 0.5, "complaints_30d": 2.0}
    assert state["errors"] and scoring.predict_one(x) == model.predict_one(x)
    assert scoring.reason == model.reason == "model"
