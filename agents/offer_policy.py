"""What decides a customer's next-best offers: :class:`RuleBasedOfferPolicy`, the
catalogue's rules, or :class:`LearnedOfferPolicy`, the bandit that learns from outcomes.
Both screen with the contact policy, rank what is left and answer a
:class:`~schemas.NextBestOffer` from ``decide(moment, features, now, ...)``."""

from __future__ import annotations

from typing import TypeAlias

from agents.learned_policy import LearnedOfferPolicy
from agents.offer_rules import RuleBasedOfferPolicy

OfferPolicy: TypeAlias = RuleBasedOfferPolicy | LearnedOfferPolicy

__all__ = ["LearnedOfferPolicy", "OfferPolicy", "RuleBasedOfferPolicy"]
