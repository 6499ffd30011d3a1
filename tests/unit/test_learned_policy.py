"""The learned policy's answer: best first, unless an explored offer leads, and then it says so."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agents.bandit import LinUCBOffers
from agents.catalogue_holder import CatalogueHolder
from agents.contact_policy import ContactPolicy
from agents.context import CHANNELS, DIMENSION, SEGMENTS, context_vector
from agents.control_group import ControlGroup
from agents.learned_policy import LearnedOfferPolicy, ModelHolder
from agents.moments import DecisionMoment
from feature_store import CustomerFeatures
from schemas import load_catalogue
from streams.app import build_policy
from streams.settings import Settings

CATALOGUE = load_catalogue(Path(__file__).parents[2] / "deploy" / "catalogue" / "offers.toml")
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _policy(epsilon: float) -> LearnedOfferPolicy:
    model = LinUCBOffers(DIMENSION, epsilon=epsilon)
    x = context_vector(None, "web", None)
    for i, offer in enumerate(o.offer_id for o in CATALOGUE.offers):
        for _ in range(30):  # distinct acceptance per offer, so the greedy order is clear
            model.learn_one(x, offer, float(i % 3 == 0))
    return LearnedOfferPolicy(
        CatalogueHolder(CATALOGUE), ContactPolicy(ControlGroup("salt", 0.0)), ModelHolder(model)
    )


@pytest.mark.parametrize("epsilon", [0.0, 0.3])
def test_an_explored_offer_may_lead_and_the_decision_says_so(epsilon: float) -> None:
    policy = _policy(epsilon)
    explored = 0
    for _ in range(400):
        moment = DecisionMoment(str(uuid.uuid4()), "c-1", "web", limit=3)
        decision = policy.decide(moment, None, NOW)
        assert decision.segment == "new"  # a first contact
        scores = [o.score for o in decision.offers]
        assert len(scores) == 3, decision
        if "exploration" in decision.reasons:
            explored += 1
            assert scores[0] < max(scores), decision  # not the greedy pick
            assert decision.offers[0].propensity < 0.5, decision
            assert scores[1:] == sorted(scores[1:], reverse=True), decision
        else:
            assert scores == sorted(scores, reverse=True), decision
            assert decision.offers[0].propensity > 0.5, decision
    if epsilon == 0.0:
        assert explored == 0
    else:  # explored when the uniform pick is not the greedy offer: about epsilon x (k-1)/k
        assert 0.15 * 400 < explored < 0.4 * 400, explored


def test_the_value_in_a_decisions_context_is_read_against_the_high_value_line() -> None:
    """Fixed at 1,000 (euros), every customer of a yen deployment read as 3, the cap: the
    model could not tell them apart by value."""
    yen = Settings(currency="JPY", high_value=50_000.0)
    policy = build_policy(yen, CatalogueHolder(CATALOGUE), ModelHolder())
    assert isinstance(policy, LearnedOfferPolicy)
    values = []
    for spend in (60_000.0, 300_000.0):
        features = CustomerFeatures(value=spend)
        decision = policy.decide(DecisionMoment("d", "c-1", "web", limit=3), features, NOW)
        assert decision.context is not None
        values.append(decision.context[1 + len(SEGMENTS) + len(CHANNELS)])  # the value
    assert values == [0.6, 3.0]
    euro = build_policy(Settings(), CatalogueHolder(CATALOGUE), ModelHolder())
    assert isinstance(euro, LearnedOfferPolicy) and euro.value_scale == 1000.0  # as before
