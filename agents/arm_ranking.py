"""Ordering a bandit's eligible offers from their scores: the offers best first.

Two rankings are kept (see :mod:`agents.bandit`): by the estimate, where an offer with
no outcome ranks after every learned one, and by the upper confidence bound. A decision
shows one of them and names the first of the other (for its propensity). Each score is
clipped to 0..1, then multiplied by the offer's worth; ties go by the offer's name, so
that a decision is the same wherever it is made.

Up to ``SORT_IN_PYTHON_UP_TO`` offers, every offer is sorted in Python. Beyond, numpy
orders the scores and Python sorts only the offers that can reach the answer (the first
``limit``, and those tied with the last of them): the same answer in less time.

>>> import numpy as np
>>> ranking = arm_ranking(np.array([0.2, 0.5, -0.1]), np.array([0.1, 0.0, 0.4]),
...                       {"a": 0, "b": 1, "c": 2}, (0.05, 0.3), ["a", "b", "c", "new"], {})
>>> ranking.by_estimate(3), ranking.first_by_bound()
([(0.5, 'b', 0.5), (0.2, 'a', 0.2), (0.0, 'c', 0.0)], 'b')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import repeat
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

# up to this many offers a plain sort costs less than numpy's set-up
SORT_IN_PYTHON_UP_TO = 64

# (score, offer, estimate): the score it was ranked by, its estimate clipped to 0..1
Placed = tuple[float, str, float]
# how each ranking sorts an offer: (no outcome yet, -score, offer, estimate)
_Key = tuple[bool, float, str, float]


class Ranking(Protocol):
    def by_estimate(self, limit: int) -> list[Placed]:
        """The first ``limit`` by the estimate; an offer with no outcome scores 0 there
        and ranks after every learned one (its estimate is the prior, an assumption,
        which a high worth could put first)."""
        ...

    def by_bound(self, limit: int) -> list[Placed]:
        """The first ``limit`` by the upper confidence bound."""
        ...

    def first_by_estimate(self) -> str: ...

    def first_by_bound(self) -> str: ...


def arm_ranking(
    means: NDArray[np.float64],
    bonuses: NDArray[np.float64],
    rows: Mapping[str, int],
    unseen: tuple[float, float],
    arms: Sequence[str],
    worth: Mapping[str, float],
) -> Ranking:
    """The ranking of ``arms``: ``rows`` says which of ``means`` and ``bonuses`` (one per
    learned arm) is each arm's; an arm with none has ``unseen`` (the prior, its bonus)."""
    if len(arms) <= SORT_IN_PYTHON_UP_TO:
        return PlainRanking(means.tolist(), bonuses.tolist(), rows, unseen, arms, worth)
    return ContenderRanking(means, bonuses, rows, unseen, arms, worth)


def _clip(x: float) -> float:
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x


class PlainRanking:
    """Every arm sorted in Python."""

    def __init__(
        self,
        means: list[float],
        bonuses: list[float],
        rows: Mapping[str, int],
        unseen: tuple[float, float],
        arms: Sequence[str],
        worth: Mapping[str, float],
    ) -> None:
        self._estimate: list[_Key] = []
        self._bound: list[_Key] = []
        for name in arms:
            row = rows.get(name)
            mean, bonus = unseen if row is None else (means[row], bonuses[row])
            w = worth.get(name, 1.0)
            estimate = _clip(mean)
            self._estimate.append((row is None, -estimate * w, name, estimate))
            self._bound.append((False, -_clip(mean + bonus) * w, name, estimate))

    def by_estimate(self, limit: int) -> list[Placed]:
        return _estimate_order(sorted(self._estimate)[:limit])

    def by_bound(self, limit: int) -> list[Placed]:
        return _bound_order(sorted(self._bound)[:limit])

    def first_by_estimate(self) -> str:
        return min(self._estimate)[2]

    def first_by_bound(self) -> str:
        return min(self._bound)[2]


class ContenderRanking:
    """numpy finds the arms that can come first; Python sorts those alone."""

    def __init__(
        self,
        means: NDArray[np.float64],
        bonuses: NDArray[np.float64],
        rows: Mapping[str, int],
        unseen: tuple[float, float],
        arms: Sequence[str],
        worth: Mapping[str, float],
    ) -> None:
        self._names = list(arms)
        # each arm's row, or one past the learned ones: the prior's
        at = np.fromiter(map(rows.get, arms, repeat(len(means))), np.intp, len(arms))
        mean = np.append(means, unseen[0])[at]
        bound = np.clip(mean + np.append(bonuses, unseen[1])[at], 0.0, 1.0)
        w = np.fromiter(map(worth.get, arms, repeat(1.0)), np.float64, len(arms))
        self._estimate = np.clip(mean, 0.0, 1.0)  # as Python clips: a NaN stays NaN
        self._by_estimate = -self._estimate * w
        self._by_bound = -bound * w
        self._unlearned = at == len(means)
        self._learned = np.zeros(len(arms), dtype=bool)

    def by_estimate(self, limit: int) -> list[Placed]:
        return _estimate_order(self._first(limit, self._unlearned, self._by_estimate))

    def by_bound(self, limit: int) -> list[Placed]:
        return _bound_order(self._first(limit, self._learned, self._by_bound))

    def first_by_estimate(self) -> str:
        return self._first(1, self._unlearned, self._by_estimate)[0][2]

    def first_by_bound(self) -> str:
        return self._first(1, self._learned, self._by_bound)[0][2]

    def _first(self, limit: int, late: NDArray[np.bool_], keys: NDArray[np.float64]) -> list[_Key]:
        """The first ``limit`` keys, sorted as Python sorts them."""
        n = len(self._names)
        chosen: NDArray[np.intp] = np.arange(n)
        # a NaN (never from a sane model) makes the order depend on the input's: sort all
        if limit < n and not np.isnan(keys).any():
            order = np.lexsort((keys, late))  # by late, then key
            last, rest = order[limit - 1], order[limit:]
            # the arms tied with the last of the first limit: their names order them
            tied = (late[rest] == late[last]) & (keys[rest] == keys[last])
            chosen = np.concatenate((order[:limit], rest[tied]))
        names = [self._names[i] for i in chosen.tolist()]
        keyed = zip(late[chosen].tolist(), keys[chosen].tolist(), names,
                    self._estimate[chosen].tolist(), strict=True)  # fmt: skip
        return sorted(keyed)[:limit]


def _estimate_order(keys: list[_Key]) -> list[Placed]:
    return [(0.0 if unlearned else -score, name, estimate)
            for unlearned, score, name, estimate in keys]  # fmt: skip


def _bound_order(keys: list[_Key]) -> list[Placed]:
    return [(-score, name, estimate) for _, score, name, estimate in keys]
