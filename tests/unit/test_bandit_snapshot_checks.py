"""A bandit snapshot no model could hold is refused when it is restored, as an unreadable
one is: a negative or fractional count, an arm's time that is not finite, an inverse that
is not its design matrix's. Each loaded without a word: an identity inverse scored the
arm 1.0 until its next re-anchor jumped to the design matrix's estimate, a time of NaN
kept a retired offer's arm for good, a dimension of 29.5 was read as 29."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from agents.bandit import LinUCBOffers, _Arm
from agents.context import CATEGORIES, CHANNELS, DIMENSION, SEGMENTS, context_vector
from feature_store import CustomerFeatures
from streams.model_reload import ModelReloads
from streams.model_snapshots import MODEL
from tests.unit.test_model_reload import Snapshots, retries, snapshot, worker


def learned() -> dict[str, Any]:
    rng = random.Random(4)
    model = LinUCBOffers(DIMENSION)
    for i in range(2_500):  # over two re-anchors of each arm
        x = [1.0] + [rng.random() for _ in range(DIMENSION - 1)]
        model.learn_one(x, "ab"[i % 2], float(rng.random() < 0.2), at=1.7e9 + i)
    state: dict[str, Any] = json.loads(json.dumps(model.to_dict()))
    return state


def arm(**changes: object) -> Callable[[dict[str, Any]], None]:
    def change(state: dict[str, Any]) -> None:
        state["arms"]["a"] |= changes

    return change


def setting(**changes: object) -> Callable[[dict[str, Any]], None]:
    return lambda state: state.update(changes)


def identity_inverse(state: dict[str, Any]) -> None:
    state["arms"]["a"]["a_inv"] = np.eye(DIMENSION).tolist()


def inverse_a_little_off(state: dict[str, Any]) -> None:
    model = LinUCBOffers.from_dict(state)
    state["arms"]["a"]["a_inv"] = (model.arms["a"].a_inv * 1.001).tolist()


BROKEN: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "a negative n": (arm(n=-5), "arm 'a'.s n -5"),
    "a fractional n": (arm(n=12.5), "arm 'a'.s n 12.5"),
    "n a string": (arm(n="12"), "arm 'a'.s n '12'"),
    "a time of NaN": (arm(at="nan"), "arm 'a'.s time nan is not finite"),
    "an infinite time": (arm(at=float("inf")), "arm 'a'.s time inf"),
    "negative updates": (setting(updates=-1), "updates -1"),
    "a fractional dimension": (setting(dimension=DIMENSION + 0.5), "dimension"),
    "an identity inverse": (identity_inverse, "arm 'a' has an inverse that is not"),
    "an inverse 0.1 % off": (inverse_a_little_off, "arm 'a' has an inverse that is not"),
}


@pytest.mark.parametrize(("broken", "words"), BROKEN.values(), ids=list(BROKEN))
def test_a_snapshot_no_model_could_hold_is_refused(
    broken: Callable[[dict[str, Any]], None], words: str
) -> None:
    state = learned()
    LinUCBOffers.from_dict(state)  # as learned: restored
    broken(state)
    with pytest.raises(ValueError, match=words):
        LinUCBOffers.from_dict(state)


def test_an_arm_learned_long_keeps_an_inverse_within_the_check() -> None:
    """Between re-anchors the inverse is updated alone (Sherman-Morrison), and rounding
    adds up: the check must not refuse a model that learned as Moments learns."""
    rng = random.Random(6)
    model = LinUCBOffers(DIMENSION)
    for _ in range(20_999):  # the last re-anchor 999 outcomes ago
        x = [1.0] + [rng.random() ** 4 for _ in range(DIMENSION - 1)]
        model.learn_one(x, "busy", float(rng.random() < 0.1))
    kept = model.arms["busy"]
    assert kept.n % 1000 == 999
    assert np.abs(kept.a @ kept.a_inv - np.eye(DIMENSION)).max() < 1e-9
    LinUCBOffers.from_dict(model.to_dict())


def contexts(count: int, rng: random.Random) -> list[list[float]]:
    """Moments' own contexts, whose one-hot blocks add up to the bias (the design matrix
    of an arm that learned many of them is ill-conditioned: about 6 x its outcomes)."""
    return [
        context_vector(
            CustomerFeatures(
                segment=rng.choice(SEGMENTS),
                value=rng.random() * 3_000,
                experience=rng.random(),
                category_affinity={c: rng.random() for c in rng.sample(CATEGORIES, 3)},
            ),
            rng.choice(CHANNELS),
            rng.choice([*CATEGORIES, None]),
        )
        for _ in range(count)
    ]


@pytest.mark.parametrize("outcomes", [10**8, 10**9])
def test_an_arm_that_never_forgets_restores_after_a_billion_outcomes(outcomes: int) -> None:
    """With MOMENTS_OFFER_MODEL_KEPT_PER_1000=1 an arm's design matrix grows with its
    outcomes, and so does the rounding of A A^-1 between re-anchors: past 1e8 outcomes it
    was over 1e-6, and the learner's own snapshot was refused (the learner failed on it
    for good, every process kept the model before). The arm is as it would be after its
    last re-anchor (its matrix worked out afresh), then learns 999 outcomes as Moments does."""
    rng = random.Random(8)
    xs = np.array(contexts(5_000, rng))
    model = LinUCBOffers(DIMENSION, kept=1.0)
    busy = model.arms["a"] = _Arm(DIMENSION, model.ridge)
    busy.a = np.eye(DIMENSION) + outcomes * (xs.T @ xs) / len(xs)
    busy.a_inv = np.linalg.inv(busy.a)
    busy.b = busy.a @ np.full(DIMENSION, 0.01)
    busy.n = model.updates = outcomes
    for x in xs[:999]:
        model.learn_one(list(x), "a", float(rng.random() < 0.2))
    restored = LinUCBOffers.from_dict(json.loads(json.dumps(model.to_dict())), kept=1.0)
    x = list(xs[-1])
    assert restored.predict_one(x, "a") == model.predict_one(x, "a")


def test_an_inverse_of_another_arm_of_as_many_outcomes_is_refused() -> None:
    """The check scales with the arm's matrix, yet an inverse that belongs to another
    matrix of the same size (another arm's, of as many outcomes) is still refused."""
    rng = random.Random(9)
    xs = np.array(contexts(5_000, rng))
    model = LinUCBOffers(DIMENSION, kept=1.0)
    for name, half in (("a", xs[:2_500]), ("b", xs[2_500:])):
        arm = model.arms[name] = _Arm(DIMENSION, model.ridge)
        arm.a = np.eye(DIMENSION) + 10**8 * (half.T @ half) / len(half)
        arm.a_inv, arm.n = np.linalg.inv(arm.a), 10**8
    state = model.to_dict()
    LinUCBOffers.from_dict(state)  # each with its own: restored
    state["arms"]["a"]["a_inv"] = state["arms"]["b"]["a_inv"]
    with pytest.raises(ValueError, match="arm 'a' has an inverse that is not"):
        LinUCBOffers.from_dict(state)


async def test_processes_score_on_with_the_model_they_hold() -> None:
    good = learned()
    snapshots = Snapshots({MODEL: (1, snapshot(good))})
    moments = worker(snapshots)
    reloads = ModelReloads(moments)
    await reloads.check()
    held = moments.holder.model
    assert moments.holder.version == 1
    identity_inverse(good)
    snapshots.held[MODEL] = (2, snapshot(good))
    await reloads.check()
    assert moments.holder.model is held and moments.holder.version == 1
    assert retries(moments.metrics, MODEL) == 1 and reloads.refused == {MODEL: "ValueError"}
    x = [1.0] + [0.5] * (DIMENSION - 1)
    assert 0.0 <= held.predict_one(x, "a") < 0.5
