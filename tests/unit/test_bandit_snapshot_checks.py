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

from agents.bandit import LinUCBOffers
from agents.context import DIMENSION
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
