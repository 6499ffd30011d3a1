"""A churn-risk snapshot no model could hold (a negative variance or count, a feature the
scaler knows only in part, settings no model learns with) is refused when it is
restored, like an unreadable one: accepted, it failed every score (a complex square root
of the variance) or every example learned (a division by a count of zero). As a second
guard, the restored model scores one example and the snapshot is refused if it cannot."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import pytest

from agents.risk import ChurnRisk
from streams.model_reload import ModelReloads
from streams.model_snapshots import RISK
from tests.unit.test_model_reload import Snapshots, retries, snapshot, worker


def learned() -> dict[str, Any]:
    model = ChurnRisk(warmup=4)
    for i in range(40):
        model.learn_one({"experience": (i % 10) / 10, "complaints_30d": float(i % 3)}, i % 2 == 0)
    assert model.reason == "model"
    return model.to_dict()


def setting(*path: str, to: object) -> Callable[[dict[str, Any]], None]:
    def change(state: dict[str, Any]) -> None:
        for key in path[:-1]:
            state = state[key]
        state[path[-1]] = to

    return change


def dropping(*path: str) -> Callable[[dict[str, Any]], None]:
    def change(state: dict[str, Any]) -> None:
        for key in path[:-1]:
            state = state[key]
        del state[path[-1]]

    return change


BROKEN = {
    "negative variance": setting("scaler", "vars", "experience", to=-0.25),
    "negative count": setting("scaler", "counts", "experience", to=-1),
    "count of zero": setting("scaler", "counts", "experience", to=0),
    "a variance without a count": setting("scaler", "vars", "log_value", to=1.0),
    "a count without a mean": dropping("scaler", "means", "experience"),
    "negative examples": setting("examples", to=-3),
    "negative learned": setting("learned", to=-1),
    "negative churned": setting("churned", to=-1),
    "a learning rate of zero": setting("lr", to=0.0),
    "a drift delta of one": setting("drift_delta", to=1.0),
}


@pytest.mark.parametrize("broken", BROKEN.values(), ids=list(BROKEN))
def test_a_snapshot_no_model_could_hold_is_refused(
    broken: Callable[[dict[str, Any]], None],
) -> None:
    state = learned()
    ChurnRisk.from_dict(state)  # as learned: restored
    broken(state)
    with pytest.raises(ValueError, match="snapshot"):
        ChurnRisk.from_dict(state)


def test_a_variance_of_zero_is_a_feature_seen_with_one_value() -> None:
    model = ChurnRisk(warmup=2)
    for y in (True, False, True, False):
        model.learn_one({"experience": 0.5}, y)
    restored = ChurnRisk.from_dict(model.to_dict())
    assert restored.scaler.vars["experience"] == 0.0
    assert restored.predict_one({"experience": 0.5}) == model.predict_one({"experience": 0.5})


@pytest.mark.parametrize("scored", [float("nan"), 1.5, TypeError("not a real number")])
def test_a_snapshot_whose_model_cannot_score_is_refused(
    scored: float | Exception, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = learned()

    def proba(self: ChurnRisk, x: object) -> float:
        if isinstance(scored, Exception):
            raise scored
        return scored

    monkeypatch.setattr(ChurnRisk, "_model_proba", proba)
    with pytest.raises(ValueError, match="snapshot's model"):
        ChurnRisk.from_dict(state)


async def test_processes_score_on_with_the_model_they_hold() -> None:
    good = learned()
    snapshots = Snapshots({RISK: (1, snapshot(good))})
    moments = worker(snapshots)
    reloads = ModelReloads(moments)
    await reloads.check()
    held = moments.risk.model
    assert moments.risk.version == 1
    BROKEN["negative variance"](good)
    snapshots.held[RISK] = (2, snapshot(good))
    await reloads.check()
    assert moments.risk.model is held and moments.risk.version == 1
    assert retries(moments.metrics, RISK) == 1 and reloads.refused == {RISK: "ValueError"}
    assert 0.0 <= held.predict_one({"experience": 0.3}) <= 1.0


def test_one_example_beyond_a_figures_range_does_not_swamp_its_scale() -> None:
    """One example with log_value 10^6 (a faulty writer of risk-examples) took the
    scaler's spread of log_value from 2.3 to some 16,000 and flipped its weight's sign:
    every customer's value then read as about the same, for good."""
    rng = random.Random(5)

    def sample() -> tuple[dict[str, float], bool]:
        experience, seen, value = rng.random(), rng.random() * 60, rng.random() * 8
        z = -1.5 + 3 * (0.5 - experience) + seen / 30 - 0.3 * (value - 4)
        churned = rng.random() < 1 / (1 + math.exp(-z))
        return {"experience": experience, "days_since_seen": seen, "log_value": value}, churned

    model = ChurnRisk(warmup=50)
    for i in range(4_000):
        if i == 2_000:
            model.learn_one({"experience": 0.5, "days_since_seen": 10.0, "log_value": 1e6}, True)
        model.learn_one(*sample())
    assert model.drifts == 0  # (a drift would start a new scaler, hiding it)
    assert model.scaler.vars["log_value"] ** 0.5 < 5
