"""The processes that only score churn risk do so with :class:`RiskScorer`, without river:
its probability must be the one the learner's river model gives, to the last bit (a score
one ulp off could flip a crossing of the risk threshold, and raise a retention call one
process would not)."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.risk import ChurnRisk
from agents.risk_features import FEATURES, RANGES
from agents.risk_scorer import RiskScorer

NAMES = sorted(FEATURES)
figure = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)
# features in any order, some the model does not know, values in range and far out of it,
# and values no worker computes (NaN, infinities), which river answers NaN or 0..1 for too
inputs = st.dictionaries(
    st.sampled_from([*NAMES, "unknown", "other"]), figure | st.floats(), max_size=20
)


def same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def random_input(rng: random.Random) -> dict[str, float]:
    names = rng.sample([*NAMES, "unknown"], rng.randint(0, len(NAMES) + 1))
    x = {}
    for name in names:
        low, high = RANGES.get(name, (0.0, 1.0))
        x[name] = rng.choice([rng.uniform(low, high), rng.uniform(-2 * high, 3 * high), low])
    return x


@pytest.mark.parametrize("seed", range(6))
def test_a_trained_models_scorer_scores_every_input_as_the_model_does(seed: int) -> None:
    rng = random.Random(seed)
    model = ChurnRisk(warmup=rng.choice([0, 5, 40]), lr=rng.choice([0.01, 0.05, 0.5, 3.0]),
                      l2=rng.choice([0.0, 0.01]))  # fmt: skip
    for i in range(rng.randint(50, 600)):
        x = random_input(rng)
        model.learn_one(x, rng.random() < 0.2 + 0.1 * x.get("complaints_30d", 0.0))
        if i % 25 == 0:
            scorer = RiskScorer.from_state(json.loads(json.dumps(model.to_dict())))
            assert (scorer.reason, scorer.using_baseline) == (model.reason, model.using_baseline)
            for _ in range(40):
                x = random_input(rng)
                assert scorer.predict_one(x) == model.predict_one(x), x


def state_of(means: dict[str, float], variances: list[float], weights: dict[str, float],
             intercept: float) -> dict[str, Any]:  # fmt: skip
    known = sorted(means)
    return {
        "kind": "churn-risk-logreg", "warmup": 0, "lr": 0.05, "l2": 0.0, "drift_delta": 0.002,
        "examples": 9, "learned": 9, "churned": 3, "drifts": 0, "serving": True, "matured": True,
        "scaler": {"counts": dict.fromkeys(known, 9), "means": means,
                   "vars": dict(zip(known, variances, strict=False))},
        "regression": {"weights": weights, "intercept": intercept, "steps": 9},
    }  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(
    means=st.dictionaries(st.sampled_from(NAMES), figure, max_size=len(NAMES)),
    variances=st.lists(
        st.one_of(st.just(0.0), st.floats(0, 1e9)), min_size=len(NAMES), max_size=len(NAMES)
    ),
    weights=st.dictionaries(st.sampled_from(NAMES), st.floats(-50, 50), max_size=len(NAMES)),
    intercept=st.floats(-40, 40),
    xs=st.lists(inputs, min_size=1, max_size=5),
)
def test_any_snapshots_scorer_scores_as_the_model_restored_from_it(
    means: dict[str, float], variances: list[float], weights: dict[str, float],
    intercept: float, xs: list[dict[str, float]],
) -> None:  # fmt: skip
    """Features the scaler never saw, variances of zero, weights of features it never
    saw, logits beyond the clamp at 30 either side."""
    state = state_of(means, variances, weights, intercept)
    model, scorer = ChurnRisk.from_dict(state), RiskScorer.from_state(state)
    for x in xs:
        assert same(scorer.predict_one(x), model.predict_one(x))


def test_the_scorer_refuses_what_the_learner_refuses() -> None:
    state = state_of({"experience": 0.5}, [0.25], {"experience": 1.0}, 0.0)
    state["scaler"]["vars"]["experience"] = -0.25
    for restore in (ChurnRisk.from_dict, RiskScorer.from_state):
        with pytest.raises(ValueError, match="negative variance"):
            restore(state)


def test_a_model_that_learned_nothing_scores_with_its_baseline() -> None:
    x = {"experience": 0.1, "complaints_30d": 2.0}
    model = ChurnRisk()
    assert RiskScorer().predict_one(x) == model.predict_one(x)
    assert RiskScorer.from_state(model.to_dict()).predict_one(x) == model.predict_one(x)
    assert RiskScorer().reason == model.reason == "warming_up"


def test_the_api_and_the_workers_import_river_only_to_learn() -> None:
    """river imports scipy: about 1.5 s of CPU at each start of a process that only
    scores. The API never imports it; a worker's risk learner, once it reads examples.
    It then learns on from the snapshot it started from."""
    model = ChurnRisk(warmup=4)
    for i in range(40):
        model.learn_one({"experience": i % 10 / 10, "complaints_30d": float(i % 3)}, i % 2 == 0)
    code = """if True:
        import asyncio, json, sys
        from types import SimpleNamespace
        import streams.api.server, streams.app
        from agents.risk_watch import RiskHolder
        from streams.metrics import Metrics
        from streams.risk_learner import RiskLearner
        holder = RiskHolder()
        learner = RiskLearner(SimpleNamespace(), holder, Metrics(), "", "risk-examples")
        learner._start(None, 0)
        learner._start(json.load(sys.stdin), 3)
        print(holder.model.reason, learner.examples, "river" in sys.modules, "scipy" in sys.modules)
        asyncio.run(learner._loaded())
        print(learner.examples, "river" in sys.modules)
    """
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(model.to_dict()),
                         capture_output=True, text=True, check=True)  # fmt: skip
    assert out.stdout.split("\n")[:2] == ["model 40 False False", "40 True"]
