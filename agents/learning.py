"""Turning an outcome into a learning example, and into the offer and channel it is
about (pure).

>>> reward_of("accepted"), reward_of("shown")
(1.0, None)
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from datetime import timedelta

import msgspec

from agents.context import learnable
from schemas import NextBestOffer, Outcome, decode_next_best_offer

# The models' quality figures (moments_model_logloss, _rocauc) are of the newest this
# many outcomes or examples: how a model does now, not since its learner started.
QUALITY_WINDOW = 1000

# How far an outcome may be dated before its decision and still be learned: the client
# that reports it and the process that decided keep their own clocks.
CLOCK_SKEW = timedelta(minutes=5)

REWARDS: dict[str, float] = {"accepted": 1.0, "clicked": 0.3, "dismissed": 0.0, "ignored": 0.0}


def reward_of(outcome: str, rewards: dict[str, float] = REWARDS) -> float | None:
    """The reward an outcome earns; ``None`` for one that teaches nothing (``shown``)."""
    return rewards.get(outcome)


@dataclass(frozen=True, slots=True)
class Example:
    x: list[float]
    arm: str
    reward: float


def claimed(outcome: Outcome) -> str:
    """What an outcome claims for learning, once: each offer of a decision has its own
    outcomes (a customer may dismiss one offer and click another). The outcomes of one
    shown offer (:func:`impression`) make one example, of the strongest reward among
    them (see ``feature_store/lua/claim.lua``).

    >>> claimed(Outcome(decision_id="d1", customer_id="c", offer_id="book-club",
    ...                 outcome="clicked", ts="2026-12-01T00:00:00Z"))
    'd1:book-club:clicked'
    """
    return f"{outcome.decision_id}:{outcome.offer_id}:{outcome.outcome}"


def impression(outcome: Outcome) -> str:
    """The shown offer an outcome is of, its decision's and its offer's ids: one example.

    >>> impression(Outcome(decision_id="d1", customer_id="c", offer_id="book-club",
    ...                    outcome="clicked", ts="2026-12-01T00:00:00Z"))
    'd1:book-club'
    """
    return f"{outcome.decision_id}:{outcome.offer_id}"


@dataclass(frozen=True, slots=True)
class Judged:
    """What one outcome teaches, and the channel of the decision that made its offer
    (``None`` when no stored decision made it: the offer id is then the client's word)."""

    example: Example | str  # or the reason there is none
    channel: str | None


def judged(outcome: Outcome, context: str | None) -> Judged:
    """The outcome against the context of its decision (``None``: none is stored). The
    context may be another kind of decision's (an intervention's id named by mistake).
    Only the decision's first offer teaches (``not_first_offer`` for the others): the
    model has no place in its context, and its propensities are of the first place.
    One dated more than :data:`CLOCK_SKEW` before its decision (``dated_before_decision``)
    is of something else than the offer made: a client's wrong decision id or clock."""
    decision: NextBestOffer | None = None
    if context is not None:
        try:
            decision = decode_next_best_offer(context)
        except msgspec.MsgspecError:
            return Judged("not_an_offer_decision", None)
    made = decision is not None and outcome.offer_id in {o.offer_id for o in decision.offers}
    channel = decision.channel if decision is not None and made else None
    reward = reward_of(outcome.outcome)
    if reward is None:
        return Judged("no_reward", channel)
    if decision is None:
        return Judged("no_context", channel)
    if outcome.ts < decision.ts - CLOCK_SKEW:
        return Judged("dated_before_decision", channel)
    if decision.context is None:  # the rules policy's, or a fallback's: no model's features
        return Judged("no_model_context", channel)
    if not made:
        return Judged("offer_not_in_decision", channel)
    if outcome.offer_id != decision.offers[0].offer_id:
        # seen in a lower place, so looked at less: learned as if shown first, its
        # ignores sank the offers ranked below the first (propensities are of place 1)
        return Judged("not_first_offer", channel)
    x = learnable(decision.context)
    if x is None:  # stored by no version this one can read, or corrupt
        return Judged("bad_context", channel)
    return Judged(Example(x, outcome.offer_id, reward), channel)


class RewardLogLoss:
    """Progressive log loss of a model that predicts the expected reward (0 to 1): each
    outcome's reward is its soft label (a click's 0.3 counts as 0.3 of an acceptance),
    so the loss is least when the prediction is the expected reward, as the offer model
    means it to be. Scoring the prediction against "accepted" alone punished a model
    that was right about offers people click.

    Over the newest ``window`` outcomes, so that it says how the model does now (an
    average since the learner started moved little when a model went wrong after days).

    >>> loss = RewardLogLoss()
    >>> loss.update(0.3, 0.3); loss.update(0.3, 0.3)
    >>> round(loss.get(), 4), loss.n
    (0.6109, 2)
    >>> worse = RewardLogLoss(); worse.update(0.3, 0.6); round(worse.get(), 4)
    0.7947
    >>> recent = RewardLogLoss(window=2)
    >>> for predicted in (0.3, 0.6, 0.6): recent.update(0.3, predicted)
    >>> round(recent.get(), 4), recent.n
    (0.7947, 3)
    """

    def __init__(self, window: int = QUALITY_WINDOW) -> None:
        self.n = 0  # outcomes scored in all
        self._losses: deque[float] = deque(maxlen=window)
        # impression -> (its place among all scored, the prediction it was scored by)
        self._scored: dict[str, tuple[int, float]] = {}

    def update(self, reward: float, predicted: float, impression: str | None = None) -> None:
        """Score ``predicted`` against ``reward``; ``impression`` (its decision and offer)
        to score it again if a later outcome relabels it (see :meth:`relabel`)."""
        p = min(max(predicted, 1e-6), 1 - 1e-6)
        self._losses.append(_loss(reward, p))
        if impression is not None:
            self._scored[impression] = (self.n, p)
            while len(self._scored) > (self._losses.maxlen or 0):  # the oldest are out
                del self._scored[next(iter(self._scored))]
        self.n += 1

    def relabel(self, impression: str, reward: float) -> None:
        """A later outcome of an impression scored in the window raised its reward: its
        score is of the new reward, against the prediction it was scored by, so that an
        impression is scored once, by its strongest outcome.

        >>> loss = RewardLogLoss()
        >>> loss.update(0.3, 0.5, "d1:a"); loss.relabel("d1:a", 1.0)
        >>> once = RewardLogLoss(); once.update(1.0, 0.5)
        >>> loss.get() == once.get(), loss.n
        (True, 1)
        """
        found = self._scored.get(impression)
        if found is None:
            return
        place, p = found
        at = place - (self.n - len(self._losses))
        if at >= 0:  # still in the window
            self._losses[at] = _loss(reward, p)

    def get(self) -> float | None:
        """The mean of the window; None while nothing was scored (0 would read as a
        perfect model)."""
        return math.fsum(self._losses) / len(self._losses) if self._losses else None


def _loss(reward: float, p: float) -> float:
    r = min(max(reward, 0.0), 1.0)
    return -(r * math.log(p) + (1 - r) * math.log(1 - p))
