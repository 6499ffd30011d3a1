"""Turning an outcome into a learning example (pure).

>>> reward_of("accepted"), reward_of("shown")
(1.0, None)
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas import NextBestOffer, Outcome, decode_next_best_offer

REWARDS: dict[str, float] = {"accepted": 1.0, "clicked": 0.3, "dismissed": 0.0, "ignored": 0.0}


def reward_of(outcome: str, rewards: dict[str, float] = REWARDS) -> float | None:
    """The reward an outcome earns; ``None`` for one that teaches nothing (``shown``)."""
    return rewards.get(outcome)


@dataclass(frozen=True, slots=True)
class Example:
    x: list[float]
    arm: str
    reward: float


def example_for(outcome: Outcome, context: str | None) -> Example | str:
    """The example to learn from, or the reason there is none."""
    reward = reward_of(outcome.outcome)
    if reward is None:
        return "no_reward"
    if context is None:
        return "no_context"
    decision: NextBestOffer = decode_next_best_offer(context)
    if decision.context is None:
        return "no_context"
    if outcome.offer_id not in {o.offer_id for o in decision.offers}:
        return "offer_not_in_decision"
    return Example(decision.context, outcome.offer_id, reward)
