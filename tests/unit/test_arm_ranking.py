"""The ranking of many offers (numpy finds the contenders, agents/arm_ranking.py) orders
them exactly as a plain sort of every offer does, ties and offers with no outcome
included, and a bandit with hundreds of offers ranks as that plain sort does."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents import arm_ranking
from agents.arm_ranking import SORT_IN_PYTHON_UP_TO, ContenderRanking, PlainRanking
from agents.bandit import LinUCBOffers

# few distinct figures, so that ties (within a ranking, and at 0 and 1 once clipped)
# are common
figures = st.sampled_from([-0.5, -0.1, 0.0, 0.05, 0.1, 0.3, 0.3, 1.0, 1.5])
worths = st.sampled_from([1.0, 1.0, 2.0, 0.5, 40.0])


@st.composite
def offers(draw: st.DrawFn) -> tuple[list[str], dict[str, int], np.ndarray, np.ndarray]:
    names = draw(st.lists(st.sampled_from([f"o{i}" for i in range(300)]), min_size=1,
                          max_size=150, unique=True))  # fmt: skip
    learned = [n for n in names if draw(st.booleans()) or draw(st.booleans())]
    rows = {n: i for i, n in enumerate(learned)}
    means = np.array([draw(figures) for _ in learned], dtype=np.float64)
    bonuses = np.array([abs(draw(figures)) for _ in learned], dtype=np.float64)
    return names, rows, means, bonuses


@settings(max_examples=300, deadline=None)
@given(offers(), st.data(), st.integers(1, 12))
def test_many_offers_rank_as_a_plain_sort_of_all(
    drawn: tuple[list[str], dict[str, int], np.ndarray, np.ndarray],
    data: st.DataObject,
    limit: int,
) -> None:
    names, rows, means, bonuses = drawn
    worth = {n: data.draw(worths) for n in names if data.draw(st.booleans())}
    unseen = (data.draw(figures), data.draw(st.sampled_from([0.0, 0.3])))
    plain = PlainRanking(means.tolist(), bonuses.tolist(), rows, unseen, names, worth)
    quick = ContenderRanking(means, bonuses, rows, unseen, names, worth)
    assert quick.by_estimate(limit) == plain.by_estimate(limit)
    assert quick.by_bound(limit) == plain.by_bound(limit)
    assert quick.first_by_estimate() == plain.first_by_estimate()
    assert quick.first_by_bound() == plain.first_by_bound()
    assert quick.by_estimate(len(names)) == plain.by_estimate(len(names))


def test_a_bandit_with_hundreds_of_offers_ranks_as_with_a_few(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past ``SORT_IN_PYTHON_UP_TO`` offers the bandit takes the numpy path; every
    decision's offers, scores and propensities are those of the plain sort, exploring
    and optimistic decisions among them."""
    rng = np.random.default_rng(5)
    model = LinUCBOffers(dimension=4, alpha=0.3, epsilon=0.2, optimism=0.3)
    names = [f"offer-{i}" for i in range(SORT_IN_PYTHON_UP_TO * 4)]
    for name in names[: len(names) // 2]:  # half of them learned, some twins of others
        for _ in range(3):
            model.learn_one(rng.random(4).round(1).tolist(), name, float(rng.random() < 0.3))
    worth = {n: float(rng.choice([1.0, 2.0, 5.0])) for n in names}
    x = [0.5, 0.2, 1.0, 0.0]
    seeds = [f"decision-{i}" for i in range(200)]
    quick = [model.rank(x, names, worth, seed, 5) for seed in seeds]
    monkeypatch.setattr(arm_ranking, "SORT_IN_PYTHON_UP_TO", len(names))
    assert [model.rank(x, names, worth, seed, 5) for seed in seeds] == quick
    assert any(r[0].explored for r in quick)  # exploring decisions were among them
