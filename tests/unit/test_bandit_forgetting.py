"""The offer bandit forgets: at each re-anchor an arm keeps a share of its evidence
(``kept``), so an offer whose acceptance drops loses its first place within a bounded
number of outcomes. Its design matrix and rewards only accumulated: after 50,000
outcomes at 0.30, an offer fallen to 0.05 stayed estimated above one at 0.20 for 33,145
more, a delay that grew with the offer's history (about two-thirds of it)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from agents import bandit
from agents.bandit import KEPT_PER_REANCHOR, LinUCBOffers

# outcomes between re-anchors in these tests: the same dynamics at a hundredth of the
# scale (a memory of 10 / (1 - 0.95) = 200 outcomes instead of 20,000), so that long
# histories take a second
SCALED_REANCHOR = 10


def outcomes_to_fall_behind(history: int, kept: float) -> int:
    """Outcomes of an offer fallen from 0.30 to 0.05, after ``history`` at 0.30, until its
    estimate is under 0.20 (another offer's acceptance)."""
    model = LinUCBOffers(dimension=1, kept=kept)
    for _ in range(history):  # the expected reward itself: the estimate is its mean
        model.learn_one([1.0], "fading", 0.30)
    for n in range(1, 10 * history):
        model.learn_one([1.0], "fading", 0.05)
        if model.predict_one([1.0], "fading") < 0.20:
            return n
    raise AssertionError("the offer never fell behind")


def test_an_offer_whose_acceptance_drops_falls_behind_within_a_bounded_delay(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bandit, "REANCHOR_EVERY", SCALED_REANCHOR)
    memory = SCALED_REANCHOR / (1 - KEPT_PER_REANCHOR)
    short, long = (outcomes_to_fall_behind(h, KEPT_PER_REANCHOR) for h in (2_000, 20_000))
    assert short <= long < memory  # bounded by the memory, not by the history
    assert long - short <= SCALED_REANCHOR
    # never forgetting, the delay is two-thirds of the history (0.1 h = 0.15 n)
    assert outcomes_to_fall_behind(2_000, 1.0) == pytest.approx(2_000 * 2 / 3, rel=0.01)


def test_at_full_scale_an_offer_falls_behind_within_its_memory() -> None:
    """REANCHOR_EVERY as it is: 30,000 outcomes at 0.30, then the drop."""
    delay = outcomes_to_fall_behind(30_000, KEPT_PER_REANCHOR)
    assert delay < 12_000  # never forgetting: 20,000


def test_a_restored_model_learns_on_as_the_original_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Discounting keeps the snapshot exact: every figure it changes is in it."""
    monkeypatch.setattr(bandit, "REANCHOR_EVERY", SCALED_REANCHOR)
    rng = random.Random(2)

    def outcome() -> tuple[list[float], str, float]:
        x = [1.0, rng.random(), float(rng.random() < 0.5)]
        return x, rng.choice("abc"), float(rng.random() < 0.2)

    model = LinUCBOffers(dimension=3, kept=0.9)
    for _ in range(95):
        model.learn_one(*outcome())
    state = json.loads(json.dumps(model.to_dict()))
    restored = LinUCBOffers.from_dict(state, kept=0.9)
    for _ in range(200):  # several re-anchors of each arm
        x, arm, reward = outcome()
        model.learn_one(x, arm, reward)
        restored.learn_one(x, arm, reward)
    assert restored.to_dict() == model.to_dict()
    assert restored.widened(4).kept == 0.9


def test_kept_whole_the_model_never_forgets() -> None:
    model = LinUCBOffers(dimension=2, kept=1.0)
    raw = np.eye(2)
    for i in range(bandit.REANCHOR_EVERY):
        x = [1.0, float(i % 3)]
        model.learn_one(x, "a", 1.0)
        raw += np.outer(x, x)
    assert np.array_equal(model.arms["a"].a, raw)
