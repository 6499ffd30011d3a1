"""Decision moments: which touchpoints ask for a next-best offer, and their decision ids."""

from __future__ import annotations

import dataclasses
import uuid

import msgspec
import pytest

from agents.moments import (
    CUSTOMER_DECISION_NAMESPACE,
    DECISION_NAMESPACE,
    DecisionMoment,
    decision_id_for,
    legacy_decision_id,
    moment_for,
    request_moment,
)
from schemas import Consent, TouchpointEvent
from tests.unit.factories import (
    at,
    call_ended,
    call_started,
    click,
    email,
    mention,
    purchase,
    survey,
)

# --------------------------------------------------------------------------------------
# moment_for: the touchpoints that are decision moments
# --------------------------------------------------------------------------------------


def test_web_click_is_a_web_moment_with_its_category() -> None:
    event = click(5.0, "electronics", customer="cust-7", event_id="evt-1")
    assert moment_for(event) == DecisionMoment(
        decision_id=decision_id_for("evt-1", "web", "cust-7"),
        customer_id="cust-7",
        channel="web",
        trigger_event_id="evt-1",
        trigger_ts=at(5.0),
        category="electronics",
        limit=3,
    )


def test_web_click_without_category() -> None:
    moment = moment_for(click(event_id="evt-2"))
    assert moment is not None
    assert moment.channel == "web"
    assert moment.category is None
    assert moment.decision_id == decision_id_for("evt-2", "web", moment.customer_id)


def test_inbound_call_starting_is_a_call_moment() -> None:
    event = call_started("sales", ts=12.0)
    moment = moment_for(event)
    assert moment == DecisionMoment(
        decision_id=decision_id_for(event.event_id, "call", event.customer_id),
        customer_id="c1",
        channel="call",
        trigger_event_id=event.event_id,
        trigger_ts=at(12.0),
        category=None,
        limit=3,
        inbound=True,  # the customer's timing, not Moments'
    )


@pytest.mark.parametrize("reason", ["sales", "support", "billing", "complaint", "cancel", "other"])
def test_every_inbound_call_reason_is_a_moment(reason: str) -> None:
    moment = moment_for(call_started(reason))
    assert moment is not None and moment.channel == "call"


def test_outbound_or_ended_calls_are_not_moments() -> None:
    assert moment_for(call_started(direction="outbound")) is None
    assert moment_for(call_ended(0.5)) is None
    assert moment_for(call_ended(-0.5, direction="outbound")) is None


def test_email_opened_is_an_email_moment() -> None:
    event = email("opened", ts=30.0)
    moment = moment_for(event)
    assert moment == DecisionMoment(
        decision_id=decision_id_for(event.event_id, "email", event.customer_id),
        customer_id="c1",
        channel="email",
        trigger_event_id=event.event_id,
        trigger_ts=at(30.0),
        category=None,
        limit=3,
    )


@pytest.mark.parametrize(
    "action", ["sent", "delivered", "clicked", "bounced", "unsubscribed", "replied"]
)
def test_other_email_actions_are_not_moments(action: str) -> None:
    assert moment_for(email(action)) is None


@pytest.mark.parametrize(
    "event",
    [
        purchase(25.0, categories=["books"]),
        survey(4, "csat5"),
        mention(-0.5, 100),
        Consent(event_id="e-consent", customer_id="c1", ts=at(), channel="web", granted=True),
    ],
    ids=["purchase", "survey", "social_mention", "consent"],
)
def test_other_touchpoints_are_not_moments(event: TouchpointEvent) -> None:
    assert moment_for(event) is None


def test_replayed_event_gives_the_same_moment() -> None:
    first = moment_for(click(0.0, "books", event_id="evt-9"))
    again = moment_for(click(0.0, "books", event_id="evt-9"))
    assert first is not None and first == again


def test_one_event_id_on_different_channels_gives_different_decisions() -> None:
    web = moment_for(click(event_id="same"))
    call = moment_for(msgspec.structs.replace(call_started(), event_id="same"))
    opened = moment_for(msgspec.structs.replace(email("opened"), event_id="same"))
    assert web is not None and call is not None and opened is not None
    assert len({web.decision_id, call.decision_id, opened.decision_id}) == 3
    assert call.decision_id == decision_id_for("same", "call", call.customer_id)


# --------------------------------------------------------------------------------------
# request_moment: asked for over HTTP
# --------------------------------------------------------------------------------------


def test_request_moment_fields() -> None:
    moment = request_moment("cust-3", "email", limit=5)
    assert moment.customer_id == "cust-3"
    assert moment.channel == "email"
    assert moment.limit == 5
    assert moment.trigger_event_id is None
    assert moment.trigger_ts is None
    assert moment.category is None
    assert uuid.UUID(moment.decision_id).version == 4


def test_request_moment_has_a_fresh_decision_id_each_time() -> None:
    ids = {request_moment("cust-3", "web", limit=3).decision_id for _ in range(100)}
    assert len(ids) == 100


# --------------------------------------------------------------------------------------
# decision_id_for
# --------------------------------------------------------------------------------------


def test_decision_id_is_deterministic_and_stable() -> None:
    """Pinned values: a replay after a restart (or a new release) must give the same id."""
    subject = "0f3a9c27d1b84e6a5c2d7e90"  # a keyed hash, as a worker names the customer
    assert decision_id_for("evt-7", "web", subject) == "d4ecd2a7-cbdb-5d78-ad5b-67a93fedc50a"
    assert decision_id_for("evt-7", "email", subject) == "ab1f4c48-ba80-570e-8c0b-5d4b42884867"
    assert decision_id_for("evt-7", "web", subject) == decision_id_for("evt-7", "web", subject)


def test_the_older_form_of_decision_ids_stays_as_it_was() -> None:
    """Decisions recorded by a Moments before per-customer ids are found under it."""
    assert legacy_decision_id("evt-7", "web") == "8ca975eb-5507-534c-9752-7467da65415a"
    assert legacy_decision_id("evt-7", "email") == "1f57431d-cf8d-5caf-b56e-12fe08726c03"
    assert uuid.UUID(legacy_decision_id("evt-7", "call")) == uuid.uuid5(
        DECISION_NAMESPACE, "nbo:call:evt-7"
    )


def test_decision_id_is_a_uuid5_of_channel_customer_and_event() -> None:
    value = uuid.UUID(decision_id_for("evt-7", "call", "ab12"))
    assert value.version == 5
    assert value == uuid.uuid5(CUSTOMER_DECISION_NAMESPACE, "nbo:call:4:ab12:evt-7")


def test_decision_ids_differ_by_event_and_channel() -> None:
    ids = {
        decision_id_for(f"evt-{i}", channel, "ab12")
        for i in range(500)
        for channel in ("web", "email", "call", "sms")
    }
    assert len(ids) == 2000


def test_two_customers_events_that_share_an_id_get_decision_ids_of_their_own() -> None:
    """Producers that number events per source send the same event id for two customers:
    consumers, which drop a decision id seen before, would lose one customer's decision."""
    ann = moment_for(click(customer="ann", event_id="click-0001"))
    ben = moment_for(click(customer="ben", event_id="click-0001"))
    assert ann is not None and ben is not None
    assert ann.decision_id != ben.decision_id
    # nor is either the id of the older form, which named no customer
    assert legacy_decision_id("click-0001", "web") not in {ann.decision_id, ben.decision_id}
    # a subject that ends where the other's event id begins names another customer
    assert decision_id_for("c:e", "web", "a") != decision_id_for("e", "web", "a:c")


# --------------------------------------------------------------------------------------
# DecisionMoment
# --------------------------------------------------------------------------------------


def test_decision_moment_defaults_and_is_frozen() -> None:
    moment = DecisionMoment("d1", "c1", "web")
    assert (moment.trigger_event_id, moment.trigger_ts, moment.category) == (None, None, None)
    assert moment.limit == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        moment.limit = 5  # type: ignore[misc]
    assert dataclasses.replace(moment, limit=5).limit == 5
