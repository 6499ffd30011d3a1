"""A contextual bandit for next-best offers: disjoint LinUCB with epsilon exploration.

River-style: ``predict_one`` / ``learn_one``, with state that checkpoints to plain
JSON-able data (no pickle: a snapshot cannot run code when it is loaded; its matrices
packed, :mod:`agents.packed_figures`). Each offer
(arm) keeps its ridge-regression design matrix and that matrix's inverse, updated in
O(d^2) per outcome; the inverse is worked out afresh from the matrix every
``REANCHOR_EVERY`` outcomes of the arm, so that the rounding of hundreds of millions of
updates does not add up (in a simulation of the bare updates, a true acceptance of
0.100 read 0.105 after 100 million outcomes, and 0.167 after 300 million). At each
re-anchor the arm's evidence is discounted (``kept``, 0.95 by default: a memory of about
20,000 outcomes of the arm), its ridge prior kept whole, so that an offer whose
acceptance changes (a campaign fatiguing, a price changed under the same id) is tracked.
Ranking scores every arm at once from arrays stacked once per update. Ranking is
arbitrated as estimated acceptance x value x business priority. Only a share of the
decisions (``optimism``) ranks by the upper confidence bound (the estimate plus LinUCB's
bonus for what the arm has not learned yet); the others rank by the estimate alone. The
bonus is largest for an offer with no outcomes yet, and outcomes come late (minutes for a
click, days for an email): ranked by it alone, a new offer would go first for nearly every
customer until its first outcomes were learned. With probability ``epsilon`` a uniformly
chosen eligible offer goes first. Every decision logs the probability with which its first
offer was chosen (for off-policy evaluation).

>>> model = LinUCBOffers(dimension=2, alpha=0.0)
>>> for _ in range(50):
...     model.learn_one([1.0, 1.0], "a", 1.0)
...     model.learn_one([1.0, 1.0], "b", 0.0)
>>> model.predict_one([1.0, 1.0], "a") > model.predict_one([1.0, 1.0], "b")
True
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from agents.arm_ranking import arm_ranking
from agents.packed_figures import pack, unpack


@dataclass(frozen=True, slots=True)
class Ranked:
    arm: str
    # the score it was ranked by: estimated acceptance (its upper confidence bound, in an
    # optimistic decision; 0 for an offer with no outcome, in the others) x worth
    score: float
    estimate: float  # estimated acceptance, clipped to 0..1 (without the bonus)
    propensity: float  # probability that this arm was put first
    # first by exploration: epsilon, or the bonus, put it where the estimate would not
    explored: bool = False


class _Arm:
    __slots__ = ("a", "a_inv", "at", "b", "n")

    def __init__(self, dimension: int, ridge: float) -> None:
        self.a: NDArray[np.float64] = np.eye(dimension) * ridge  # the design matrix
        self.a_inv: NDArray[np.float64] = np.eye(dimension) / ridge
        self.b: NDArray[np.float64] = np.zeros(dimension)
        self.n = 0
        self.at: float | None = None  # when it last learned (epoch seconds), if told


# every so many outcomes of an arm, its inverse is worked out from its design matrix
REANCHOR_EVERY = 1000
# the share of an arm's evidence kept at each re-anchor (MOMENTS_OFFER_MODEL_KEPT_PER_1000):
# outcomes weigh less as newer ones come, a memory of about 1000 / (1 - 0.95) = 20,000
# outcomes of the arm, so that an offer whose acceptance changed is tracked (1: never
# forgets, and after 50,000 outcomes at 0.30 an offer fallen to 0.05 kept first place
# over one at 0.20 for 33,000 more)
KEPT_PER_REANCHOR = 0.95


# Up to this many learned arms, every one is scored at once (taking out the eligible
# arms' rows costs more than it saves, about 10 µs); beyond, only the eligible ones.
SCORE_ALL_UP_TO = 64
# the share of decisions ranked by the upper confidence bound: while an offer's outcomes
# are on their way, the share of first places its bonus alone can win it
OPTIMISM = 0.2
# the widest context a snapshot may hold (Moments' own has a few dozen figures): a
# dimension read from a corrupt one must not ask for gigabytes of matrices
MAX_DIMENSION = 256


@dataclass(frozen=True, slots=True)
class _Stacked:
    """Every learned arm's parameters as arrays, to score them all in two products."""

    version: tuple[int, int]  # (updates, arms) when stacked
    rows: dict[str, int]  # arm -> row, for arms with data
    theta: NDArray[np.float64]  # (arms, d): each arm's ridge estimate A^-1 b
    a_inv: NDArray[np.float64]  # (arms, d, d)


class LinUCBOffers:
    def __init__(
        self,
        dimension: int,
        alpha: float = 0.3,
        epsilon: float = 0.05,
        ridge: float = 1.0,
        prior: float = 0.05,
        optimism: float = OPTIMISM,
        kept: float = KEPT_PER_REANCHOR,
    ) -> None:
        self.dimension = dimension
        self.kept = kept  # the share of each arm's evidence kept at its re-anchors
        self.alpha = alpha
        self.epsilon = epsilon
        self.optimism = optimism  # share of decisions ranked by the upper confidence bound
        self.ridge = ridge
        self.prior = prior  # assumed acceptance for an arm with no data yet
        self.arms: dict[str, _Arm] = {}
        self.updates = 0
        self._stacked: _Stacked | None = None  # every arm at once, until the next update

    def _arm(self, name: str) -> _Arm:
        arm = self.arms.get(name)
        if arm is None:
            arm = self.arms[name] = _Arm(self.dimension, self.ridge)
        return arm

    def _stack(self) -> _Stacked:
        """The learned arms stacked, rebuilt only after the model learned something."""
        version = (self.updates, len(self.arms))
        if self._stacked is None or self._stacked.version != version:
            learned = [(name, arm) for name, arm in self.arms.items() if arm.n > 0]
            d = self.dimension
            self._stacked = _Stacked(
                version,
                {name: i for i, (name, _) in enumerate(learned)},
                np.array([arm.a_inv @ arm.b for _, arm in learned]).reshape(len(learned), d),
                np.array([arm.a_inv for _, arm in learned]).reshape(len(learned), d, d),
            )
        return self._stacked

    def _estimate(self, x: NDArray[np.float64], name: str) -> tuple[float, float]:
        arm = self.arms.get(name)
        if arm is None or arm.n == 0:
            return self.prior, self.alpha * float(np.sqrt(x @ x / self.ridge))
        theta = arm.a_inv @ arm.b
        return float(theta @ x), self.alpha * float(np.sqrt(x @ arm.a_inv @ x))

    def predict_one(self, x: Sequence[float], arm: str) -> float:
        """Estimated reward (acceptance) of showing ``arm`` in context ``x``, clipped 0..1."""
        mean, _ = self._estimate(np.asarray(x, dtype=np.float64), arm)
        return min(max(mean, 0.0), 1.0)

    def learn_one(
        self, x: Sequence[float], arm: str, reward: float, at: float | None = None
    ) -> None:
        """Learn ``reward`` for ``arm`` in context ``x``; ``at``: when (epoch seconds),
        kept to know arms no outcome has taught for long (see :meth:`retire`)."""
        v = np.asarray(x, dtype=np.float64)
        state = self._arm(arm)
        if at is not None:
            state.at = at
        state.a += np.outer(v, v)
        state.b += reward * v
        state.n += 1
        if state.n % REANCHOR_EVERY == 0:
            if self.kept < 1.0:  # what was learned long ago weighs less; the prior stays whole
                prior = np.eye(self.dimension) * self.ridge
                state.a = prior + self.kept * (state.a - prior)
                state.b *= self.kept
            state.a_inv = np.asarray(np.linalg.inv(state.a), dtype=np.float64)
        else:
            av = state.a_inv @ v
            state.a_inv -= np.outer(av, av) / (1.0 + v @ av)  # Sherman-Morrison
        self.updates += 1

    def relabel(
        self, x: Sequence[float], arm: str, old: float, new: float, at: float | None = None
    ) -> None:
        """Change the reward of an example learned for ``arm`` in context ``x`` from
        ``old`` to ``new`` (a later outcome of the same shown offer): exact for ridge
        regression, whose design matrix depends on the contexts alone, so the model is
        as if it had learned ``new`` alone, one example (for an example learned before
        the arm's last re-anchor, whose evidence was discounted by ``kept`` since, the
        change weighs a little more than it would have: 1 / 0.95 at the default, on one
        outcome of thousands). Only ``b`` moves, also on an arm that holds no example
        yet (made at its ridge prior, scored as unseen until it learns one): the
        example, its design and ``old``, is the impression's first outcome's to add,
        and a learner restarted from a snapshot that lacks both reads that one again,
        possibly after its relabel (the two on different partitions). Learned afresh
        there, the impression was learned twice, ``n`` 2 and ``b`` 1.3 x.

        >>> once, twice = LinUCBOffers(2), LinUCBOffers(2)
        >>> once.learn_one([1.0, 0.5], "a", 1.0)
        >>> twice.learn_one([1.0, 0.5], "a", 0.3); twice.relabel([1.0, 0.5], "a", 0.3, 1.0)
        >>> once.predict_one([1.0, 0.5], "a") == twice.predict_one([1.0, 0.5], "a")
        True
        >>> replayed = LinUCBOffers(2)  # the relabel read again before its first outcome
        >>> replayed.relabel([1.0, 0.5], "a", 0.3, 1.0); replayed.learn_one([1.0, 0.5], "a", 0.3)
        >>> replayed.arms["a"].n, replayed.predict_one([1.0, 0.5], "a") == once.predict_one(
        ...     [1.0, 0.5], "a")
        (1, True)
        """
        state = self._arm(arm)
        if at is not None:
            state.at = at
        state.b += (new - old) * np.asarray(x, dtype=np.float64)
        self._stacked = None  # its estimate changed (``updates`` counts examples learned)

    def rank(
        self,
        x: Sequence[float],
        arms: Sequence[str],
        worth: Mapping[str, float],
        seed: str,
        limit: int = 3,
    ) -> list[Ranked]:
        """Eligible arms best first; ``worth`` is value x priority per arm."""
        if not arms:
            return []
        v = np.asarray(x, dtype=np.float64)
        stacked = self._stack()
        rows, theta, a_inv = stacked.rows, stacked.theta, stacked.a_inv
        if len(rows) > max(SCORE_ALL_UP_TO, 4 * len(arms)):  # few of the arms learned are
            # eligible (offers retired from the catalogue keep their arms): only theirs
            # are scored, where taking their rows costs less than scoring every arm
            eligible = [name for name in dict.fromkeys(arms) if name in rows]
            wanted = [rows[name] for name in eligible]
            theta, a_inv = theta[wanted], a_inv[wanted]
            rows = {name: i for i, name in enumerate(eligible)}
        unseen = (self.prior, self.alpha * float(np.sqrt(v @ v / self.ridge)))
        bonuses = self.alpha * np.sqrt(np.maximum((a_inv @ v) @ v, 0.0))
        ranking = arm_ranking(theta @ v, bonuses, rows, unseen, arms, worth)
        # the seed's hash draws all three chances (a seeded random.Random cost 7 µs a
        # decision): exploration, its pick, and the optimistic ranking
        draw = hashlib.blake2b(seed.encode(), digest_size=24).digest()
        optimistic = int.from_bytes(draw[16:]) / 2**64 < self.optimism
        k = len(arms)
        explore = k > 1 and int.from_bytes(draw[:8]) / 2**64 < self.epsilon
        shown = k if explore else limit  # an explored pick may come from anywhere
        ranked: list[tuple[float, str, float]]  # (score, arm, estimate), as decided
        if optimistic:
            ranked = ranking.by_bound(shown)
            bold, cautious = ranked[0][1], ranking.first_by_estimate()  # each one's first
        else:
            ranked = ranking.by_estimate(shown)
            bold, cautious = ranking.first_by_bound(), ranked[0][1]
        if explore:
            pick = int.from_bytes(draw[8:16]) % k
            ranked.insert(0, ranked.pop(pick))
        out: list[Ranked] = []
        for score, name, estimate in ranked[:limit]:
            chosen = self.optimism * (name == bold) + (1 - self.optimism) * (name == cautious)
            p = self.epsilon / k + (1 - self.epsilon) * chosen
            # six significant digits: a small epsilon's propensity must not round to 0
            out.append(Ranked(name, round(score, 6), round(estimate, 6), float(f"{p:.6g}"),
                              explored=not out and name != cautious))  # fmt: skip
        return out

    def to_dict(self, packed: bool = True) -> dict[str, Any]:
        """The model as plain data; ``packed``: its matrices as base64
        (:mod:`agents.packed_figures`), else as JSON lists of numbers, which a Moments
        from before packed figures reads too (for a rolling upgrade)."""
        write = pack if packed else _as_lists
        return {
            "kind": "linucb-disjoint",
            "dimension": self.dimension,
            "alpha": self.alpha,
            "epsilon": self.epsilon,
            "ridge": self.ridge,
            "prior": self.prior,
            "optimism": self.optimism,
            "updates": self.updates,
            "arms": {
                name: {"a": write(arm.a), "a_inv": write(arm.a_inv), "b": write(arm.b), "n": arm.n}
                | ({} if arm.at is None else {"at": arm.at})
                for name, arm in sorted(self.arms.items())
            },
        }

    def retire(self, offered: Collection[str], idle_s: float, now: float) -> list[str]:
        """Drop the arms of offers no longer ``offered`` that learned nothing for
        ``idle_s`` (retired campaigns: every snapshot, and every process reloading it,
        would carry them for good); the names dropped. An arm with no time yet (learned
        before times were kept) is timed from ``now``.

        >>> model = LinUCBOffers(dimension=1)
        >>> model.learn_one([1.0], "summer", 1.0, at=0.0)
        >>> model.learn_one([1.0], "winter", 1.0, at=90.0)
        >>> model.learn_one([1.0], "old", 1.0)
        >>> model.retire({"winter"}, idle_s=50.0, now=100.0), sorted(model.arms)
        (['summer'], ['old', 'winter'])
        """
        gone = []
        for name, arm in list(self.arms.items()):
            if name in offered:
                continue
            if arm.at is None:
                arm.at = now
            elif now - arm.at > idle_s:
                del self.arms[name]
                gone.append(name)
        return gone

    def widened(self, dimension: int) -> LinUCBOffers:
        """The model for a context with features added at its end: each arm learned
        nothing of them yet (ridge prior for them, no evidence). Itself when the
        dimension is already that.

        >>> model = LinUCBOffers(dimension=2, alpha=0.0)
        >>> model.learn_one([1.0, 1.0], "a", 1.0)
        >>> wide = model.widened(3)
        >>> wide.dimension, wide.predict_one([1.0, 1.0, 0.0], "a") == model.predict_one(
        ...     [1.0, 1.0], "a")
        (3, True)
        """
        if dimension == self.dimension:
            return self
        if dimension < self.dimension:
            raise ValueError(f"cannot narrow a model of {self.dimension} features to {dimension}")
        added = dimension - self.dimension
        wide = LinUCBOffers(
            dimension, self.alpha, self.epsilon, self.ridge, self.prior, self.optimism, self.kept
        )
        wide.updates = self.updates
        for name, arm in self.arms.items():
            grown = _Arm(dimension, self.ridge)
            grown.a[: self.dimension, : self.dimension] = arm.a
            grown.a_inv[: self.dimension, : self.dimension] = arm.a_inv
            grown.b = np.concatenate([arm.b, np.zeros(added)])
            grown.n, grown.at = arm.n, arm.at
            wide.arms[name] = grown
        return wide

    @classmethod
    def from_dict(cls, state: Mapping[str, Any], kept: float = KEPT_PER_REANCHOR) -> LinUCBOffers:
        """The model ``state`` holds, keeping ``kept`` of each arm's evidence at its
        re-anchors from then on (a setting of the learner's, not of the snapshot: only a
        model that learns uses it); ValueError for a snapshot no model could hold."""
        if state.get("kind") != "linucb-disjoint":
            raise ValueError(f"not a LinUCB snapshot: {state.get('kind')!r}")
        dimension = _count(state["dimension"], "dimension")
        alpha, epsilon = float(state["alpha"]), float(state["epsilon"])
        ridge, prior = float(state["ridge"]), float(state["prior"])
        # a snapshot from before the share was kept ranked every decision by the bound;
        # it is loaded with today's share
        optimism = float(state.get("optimism", OPTIMISM))
        # checked before any arm's matrix is made: a corrupt dimension would ask for
        # gigabytes, a ridge of 0 or less scores new offers NaN
        if not 1 <= dimension <= MAX_DIMENSION:
            raise ValueError(f"dimension {dimension} is not from 1 to {MAX_DIMENSION}")
        if not (0 < ridge < math.inf and 0 <= alpha < math.inf):
            raise ValueError(f"ridge {ridge} and alpha {alpha}: the ridge above 0, both finite")
        if not (0 <= epsilon <= 1 and 0 <= prior <= 1 and 0 <= optimism <= 1):
            raise ValueError(
                f"epsilon {epsilon}, prior {prior} and optimism {optimism} must be from 0 to 1"
            )
        model = cls(dimension, alpha, epsilon, ridge, prior, optimism, kept)
        model.updates = _count(state["updates"], "updates")
        square = (model.dimension, model.dimension)
        for name, arm in state["arms"].items():
            restored = _Arm(model.dimension, model.ridge)
            what = f"arm {name!r}"
            restored.a_inv = unpack(arm["a_inv"], square, what)
            restored.b = unpack(arm["b"], (model.dimension,), what)
            restored.n = _count(arm["n"], f"{what}'s n")
            restored.at = None if arm.get("at") is None else float(arm["at"])
            if restored.at is not None and not math.isfinite(restored.at):
                raise ValueError(f"{what}'s time {restored.at} is not finite")
            restored.a = _design_matrix(what, arm.get("a"), restored.a_inv, square)
            _check_inverse(what, restored.a, restored.a_inv)
            model.arms[name] = restored
        return model


def _count(kept: Any, what: str) -> int:
    """A whole number of a snapshot, not negative; ValueError naming ``what`` otherwise
    (``int`` truncated a dimension of 29.5, and took a count of -5 as it was)."""
    if isinstance(kept, bool) or not isinstance(kept, int) or kept < 0:
        raise ValueError(f"{what} {kept!r} is not a whole number, 0 or more")
    return kept


def _check_inverse(what: str, a: NDArray[np.float64], a_inv: NDArray[np.float64]) -> None:
    """ValueError unless ``a_inv`` is the inverse of ``a``, to rounding: A A^-1 off I by
    at most 1e-6, or by 1e-13 of A's condition number (max-row-sum norms), whichever is
    more. The model scores with the inverse and re-anchors on the design matrix: with
    one not the other's inverse, an arm's estimates would jump at its next re-anchor.
    The rounding of the updates between re-anchors grows with the condition, and with
    MOMENTS_OFFER_MODEL_KEPT_PER_1000=1 the condition grows with the arm's outcomes
    (about 26 x them, in Moments' contexts): A A^-1 was off I by 9e-7 after 1e8 outcomes
    and by 6e-6 after 1e9 (3e-16 of the condition at most), where a bound of 1e-6 alone
    refused the learner's own snapshot; another arm's inverse is off by 0.3."""
    off = float(np.abs(a @ a_inv - np.eye(len(a))).max())  # (np.allclose: 10x as long)
    if off <= 1e-6:
        return
    try:  # worked out only for an arm past the plain bound: a busy one, or a broken one
        condition = _max_row_sum(a) * _max_row_sum(np.linalg.inv(a))
    except np.linalg.LinAlgError as exc:
        raise ValueError(f"{what} has a design matrix that is singular") from exc
    if not off <= 1e-13 * condition:
        raise ValueError(f"{what} has an inverse that is not its design matrix's")


def _max_row_sum(matrix: NDArray[np.floating[Any]]) -> float:
    return float(np.abs(matrix).sum(axis=1).max())


def _as_lists(figures: NDArray[np.float64]) -> Any:
    return figures.tolist()


def _design_matrix(
    what: str, kept: Any, a_inv: NDArray[np.float64], square: tuple[int, int]
) -> NDArray[np.float64]:
    """An arm's design matrix as a snapshot keeps it; one from before they were kept is
    worked out from the inverse (as exact as that is, from then on re-anchored)."""
    if kept is None:
        try:
            return np.asarray(np.linalg.inv(a_inv), dtype=np.float64)
        except np.linalg.LinAlgError as exc:
            raise ValueError(f"{what} has an inverse that is singular") from exc
    return unpack(kept, square, what)
