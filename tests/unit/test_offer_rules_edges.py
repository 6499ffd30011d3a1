"""The rules policy (agents/offer_rules.py) for a customer whose category counts sum to 0."""

from __future__ import annotations

from agents.offer_rules import RuleBasedOfferPolicy
from schemas import Offer

BOOKS = Offer(offer_id="books", title="Books", channels=["web"], value=2.0, categories=["books"])


def test_category_counts_summing_to_zero_score_the_offer_at_its_worth() -> None:
    assert RuleBasedOfferPolicy._score(BOOKS, {"books": 0}, 0, None) == BOOKS.worth
