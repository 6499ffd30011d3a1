"""The bandit at its edges: a widened model keeps its optimism (agents/bandit.py), and a
NaN score ranks many offers as a plain sort does (agents/arm_ranking.py)."""

from __future__ import annotations

import numpy as np

from agents.arm_ranking import ContenderRanking, PlainRanking
from agents.bandit import LinUCBOffers


def test_a_widened_model_keeps_its_share_of_optimistic_decisions() -> None:
    model = LinUCBOffers(dimension=2, alpha=0.1, epsilon=0.01, optimism=0.7)
    model.learn_one([1.0, 0.0], "a", 1.0)
    wide = model.widened(3)
    assert (wide.alpha, wide.epsilon, wide.optimism) == (0.1, 0.01, 0.7)
    assert LinUCBOffers.from_dict(wide.to_dict()).optimism == 0.7


def test_a_nan_score_ranks_many_offers_as_a_plain_sort_does() -> None:
    """A NaN makes a sort's order depend on the input's: both ways sort every offer."""
    names = [f"o{i:03d}" for i in range(100)]
    rows = {n: i for i, n in enumerate(names)}
    means = np.linspace(0.9, 0.0, len(names))
    means[3] = np.nan
    bonuses = np.zeros(len(names))
    plain = PlainRanking(means.tolist(), bonuses.tolist(), rows, (0.05, 0.3), names, {})
    quick = ContenderRanking(means, bonuses, rows, (0.05, 0.3), names, {})

    def names_of(placed: list[tuple[float, str, float]]) -> list[str]:
        return [name for _, name, _ in placed]  # NaN != NaN: compare the offers

    for limit in (1, 3, 10):
        assert names_of(quick.by_estimate(limit)) == names_of(plain.by_estimate(limit))
        assert names_of(quick.by_bound(limit)) == names_of(plain.by_bound(limit))
    assert quick.first_by_estimate() == plain.first_by_estimate()
