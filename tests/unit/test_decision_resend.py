"""A recorded decision sent again (agents/contact_policy.py
still_allowed, agents/touchpoint_decisions.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from agents.catalogue_holder import CatalogueHolder
from agents.contact_policy import ContactPolicy
from agents.control_group import ControlGroup
from agents.offer_rules import RuleBasedOfferPolicy
from feature_store import ApplyStatus, CustomerFeatures
from schemas import (
    Call,
    ContactRules,
    NextBestOffer,
    Offer,
    OfferCatalogue,
    OfferScore,
    encode_decision,
)
from tests.unit.factories import T0
from tests.unit.test_touchpoint_handler import KNOWN, RecordingStore, handler, records

OPT_IN_CALLS = ContactRules(consent_required=["call"])
TAKEN = NextBestOffer(decision_id="d1", customer_id="c1", channel="call",
                      ts=datetime(2026, 11, 23, tzinfo=UTC), trigger_event_id="e1",
                      offers=[OfferScore(offer_id="tips", score=0.4, propensity=1.0)],
                      reasons=["segment:new"])  # fmt: skip
POLICY = ContactPolicy(ControlGroup("salt", 0.0))


def test_a_decision_for_a_call_they_made_is_sent_again_on_an_opt_in_channel() -> None:
    """They called in (no grant asked), nothing withdrawn since: the decision stands."""
    never_granted = CustomerFeatures()  # no word on calls
    assert POLICY.still_allowed(TAKEN, never_granted, OPT_IN_CALLS, inbound=True) is TAKEN
    # reaching out to them is another matter
    assert POLICY.still_allowed(TAKEN, never_granted, OPT_IN_CALLS).offers == []


def test_a_decision_without_offers_is_sent_again_exactly_as_recorded() -> None:
    """A control-group (or already suppressed) decision gains no reason on its resend."""
    empty = NextBestOffer(decision_id="d2", customer_id="c1", channel="email",
                          ts=TAKEN.ts, trigger_event_id="e1", offers=[],
                          reasons=["control_group"])  # fmt: skip
    withdrawn = CustomerFeatures(consent={"email": False})
    assert POLICY.still_allowed(empty, withdrawn) is empty


async def test_a_worker_started_again_resends_an_inbound_calls_offers_on_an_opt_in_channel() -> (
    None
):
    catalogue = OfferCatalogue(
        version="test", contact_policy=OPT_IN_CALLS,
        offers=[Offer(offer_id="any", title="Any", channels=["call"], value=1.0)],
    )  # fmt: skip
    policy = RuleBasedOfferPolicy(CatalogueHolder(catalogue), ContactPolicy(ControlGroup("t", 0.0)))
    call = Call(event_id="call-1", customer_id="cust-1", ts=T0, status="started",
                direction="inbound", reason="billing")  # fmt: skip
    first = await handler(RecordingStore(features={"cust-1": KNOWN}), policy).handle(records(call))
    (recorded,) = first.decisions
    assert recorded.channel == "call" and recorded.offers  # they called: no grant needed
    store = RecordingStore(features={"cust-1": KNOWN},
                           statuses={"call-1": ApplyStatus.DUPLICATE_RECORDED})  # fmt: skip
    store.contexts[("cust-1", recorded.decision_id)] = encode_decision(recorded).decode()
    again = await handler(store, policy).handle(records(call))
    assert again.decisions == [recorded]
