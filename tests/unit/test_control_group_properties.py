"""The hold-out control group gets nothing, whichever way a decision is taken: the
screen, the rules policy, the learned policy and the fallback answer all say
``control`` exactly for its members and show them no offer. Otherwise the lift measured
over the control group would be blurred."""

from __future__ import annotations

from datetime import datetime

from hypothesis import given, note, settings
from hypothesis import strategies as st

from agents.catalogue_holder import CatalogueHolder
from agents.contact_policy import ContactPolicy
from agents.control_group import ControlGroup
from agents.fallback_offers import fallback_decision
from agents.learned_policy import LearnedOfferPolicy, ModelHolder
from agents.moments import DecisionMoment
from agents.offer_rules import RuleBasedOfferPolicy
from schemas import OfferCatalogue
from tests.unit.decision_strategies import (
    CHANNELS,
    catalogues,
    customer_features,
    instants,
    offer_models,
)


@settings(max_examples=40, deadline=None)
@given(
    customer_id=st.text(min_size=1, max_size=12),
    salt=st.text(max_size=6),
    percent=st.sampled_from([0.0, 5.0, 50.0, 100.0]) | st.floats(0, 100),
    catalogue=catalogues(),
    channel=st.sampled_from(CHANNELS),
    inbound=st.booleans(),
    now=instants(),
    data=st.data(),
)
def test_the_control_group_is_shown_nothing_by_any_policy_or_fallback(
    customer_id: str,
    salt: str,
    percent: float,
    catalogue: OfferCatalogue,
    channel: str,
    inbound: bool,
    now: datetime,
    data: st.DataObject,
) -> None:
    """For any customer and share held out: every way of deciding marks the decision
    ``control`` exactly when the customer is in the group, and then shows no offer and
    gives ``control_group`` as the reason."""
    group = ControlGroup(salt, percent)
    held = group.contains(customer_id)
    features = data.draw(st.none() | customer_features(now))
    screen = ContactPolicy(group)
    holder = CatalogueHolder(catalogue)
    policies = (
        RuleBasedOfferPolicy(holder, screen),
        LearnedOfferPolicy(holder, screen, ModelHolder(data.draw(offer_models()))),
    )
    verdict = screen.screen(
        customer_id,
        channel,
        features,
        catalogue.offers,
        now,
        rules=catalogue.contact_policy,
        inbound=inbound,
    )
    assert verdict.control == held
    if held:
        assert verdict.allowed == [] and verdict.reasons == ["control_group"]
    moment = DecisionMoment("d1", customer_id, channel, limit=3, inbound=inbound)
    decisions = [p.decide(moment, features, now) for p in policies]
    decisions.append(
        fallback_decision(customer_id, channel, 3, "latency_budget", catalogue, group, now)
    )
    note(repr(decisions))
    for decision in decisions:
        assert decision.control == held
        if held:
            assert decision.offers == [] and "control_group" in decision.reasons
