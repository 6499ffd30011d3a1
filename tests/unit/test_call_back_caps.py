"""A call back is asked for only within the call channel's contact caps: past them the
alert is still raised, but says not to call, with the contact policy's reason."""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec
import pytest

from agents.alert_actions import ACTIONS, QUIET_CALLS, CallsCapped
from agents.alert_terms import calls_capped
from agents.contact_policy import ContactPolicy
from agents.control_group import ControlGroup
from agents.interventions import interventions_for
from feature_store import CustomerFeatures
from feature_store.features import ContactHistory
from schemas import Call, ContactRules, Offer, OfferCatalogue, SocialMention, WebClick
from tests.unit.test_intervention_terms import AT, AT_RISK, VOUCHER, NoneSpent, worker_policy
from tests.unit.test_touchpoint_handler import NOW, RecordingStore, handler, records

POLICY = ContactPolicy(ControlGroup("salt", 0.0))
ONCE_A_DAY = ContactRules(daily_caps={"call": 1}, weekly_caps={"call": 3})
DAY = CallsCapped("suppressed:fatigue:call:day", lifts_tomorrow=True)
WEEK = CallsCapped("suppressed:fatigue:outbound:week", lifts_tomorrow=False)


def catalogue(rules: ContactRules) -> OfferCatalogue:
    return OfferCatalogue(version="caps", offers=[VOUCHER], contact_policy=rules)


def seen(today: dict[str, int], week: dict[str, int] | None = None) -> CustomerFeatures:
    contact = ContactHistory(shown_today=today, shown_7d=week or today)
    return msgspec.structs.replace(AT_RISK, contact=contact, timezone="Europe/Paris")


def page(ts: datetime = AT) -> WebClick:
    return WebClick(event_id="w1", customer_id="c1", ts=ts, page="/account/cancel")


def calling(ts: datetime = AT) -> Call:
    return Call(event_id="k1", customer_id="c1", ts=ts, status="started", direction="inbound",
                reason="cancel")  # fmt: skip


@pytest.mark.parametrize(
    ("rules", "features", "reason", "tomorrow"),
    [
        (ONCE_A_DAY, seen({"call": 1}), "suppressed:fatigue:call:day", True),
        (ONCE_A_DAY, seen({"call": 1}, {"call": 3}), "suppressed:fatigue:call:week", False),
        (ONCE_A_DAY, seen({}, {"call": 3}), "suppressed:fatigue:call:week", False),
        # the outbound channels together: two emails today make the call one too many
        (ContactRules(outbound_daily_cap=2), seen({"email": 2}), "suppressed:fatigue:outbound:day",
         True),
        (ContactRules(outbound_weekly_cap=2), seen({}, {"sms": 2}),
         "suppressed:fatigue:outbound:week", False),
        # a cap of 0 closes the channel: it never lifts
        (ContactRules(daily_caps={"call": 0}), seen({}), "suppressed:fatigue:call:day", False),
    ],
)  # fmt: skip
def test_the_caps_reached_are_those_a_call_decision_would_give(
    rules: ContactRules, features: CustomerFeatures, reason: str, tomorrow: bool
) -> None:
    assert calls_capped(catalogue(rules), features) == CallsCapped(reason, tomorrow)
    # the contact policy refuses an outbound call then, for a reason of the same cap
    verdict = POLICY.screen("c1", "call", features, [VOUCHER], AT, None, rules)
    assert verdict.allowed == [] and verdict.reasons[0].rsplit(":", 1)[0] in reason


def test_within_the_caps_nothing_is_capped() -> None:
    assert calls_capped(catalogue(ONCE_A_DAY), seen({"email": 5}, {"call": 2})) is None
    # a channel without caps of its own in the catalogue keeps the default ones (2 a day)
    unset = catalogue(ContactRules(outbound_daily_cap=9))
    assert calls_capped(unset, seen({"call": 1})) is None
    assert calls_capped(unset, seen({"call": 2})) == DAY


def test_a_call_back_past_the_caps_is_raised_and_says_not_to_call() -> None:
    features = seen({"call": 2})
    alerts = interventions_for(page(), features, AT, risk=0.8, risk_crossed=True,
                               calls_capped=DAY)  # fmt: skip
    by_kind = {a.kind: a for a in alerts}
    assert set(by_kind) == {"save_desk", "retention_call"}  # on the screens all the same
    for alert in alerts:
        assert alert.reasons[-1] == "fatigue:call:day"
        assert alert.suggested_action.startswith(
            "Do not call them back before tomorrow, their time: the call caps are reached "
            "(they had as many contacts by call as a day allows). Should they call in: "
        )
    assert by_kind["save_desk"].suggested_action.endswith(ACTIONS["save_desk"][1:])


def test_a_weekly_cap_names_no_day_and_outranks_the_quiet_hours() -> None:
    [alert] = interventions_for(page(), seen({}), AT, calls_capped=WEEK,
                                calls_quiet_until="09:00")  # fmt: skip
    assert alert.reasons == ["visited:cancellation_page", "fatigue:outbound:week"]
    assert QUIET_CALLS not in alert.reasons
    assert alert.suggested_action.startswith("Do not call them back: the call caps are ")
    assert "as a week allows" in alert.suggested_action


def test_the_customer_on_the_line_and_a_public_reply_are_not_held_by_the_caps() -> None:
    on_the_line = interventions_for(calling(), seen({"call": 2}), AT, calls_capped=DAY)
    assert {a.kind for a in on_the_line} == {"save_desk", "retention_call"}
    assert not any("fatigue:call:day" in a.reasons for a in on_the_line)
    assert not any(a.suggested_action.startswith("Do not call") for a in on_the_line)
    loud = SocialMention(event_id="m1", customer_id="c1", ts=AT, platform="x", sentiment=-0.9,
                         reach=50_000)  # fmt: skip
    [reply] = interventions_for(loud, seen({"call": 2}), AT, calls_capped=DAY)
    assert (reply.kind, reply.reasons[-1]) == ("service_recovery", "reach:50000")


def test_without_their_timezone_the_next_day_is_the_business_one() -> None:
    features = msgspec.structs.replace(seen({"call": 2}), timezone=None)
    [alert] = interventions_for(page(), features, AT, calls_capped=DAY)
    assert alert.suggested_action.startswith(
        "Do not call them back before tomorrow, in the business's timezone (theirs is not known)"
    )


# the worker: the caps as its decisions count them, the batch's own offers included -----


async def test_the_worker_holds_a_call_back_once_the_call_caps_are_reached() -> None:
    features = msgspec.structs.replace(AT_RISK, contact=ContactHistory(shown_today={"call": 1}))
    store = RecordingStore(features={"cust-1": features})
    store.budgets = NoneSpent()  # type: ignore[attr-defined]
    click = WebClick(event_id="w1", customer_id="cust-1", ts=NOW, page="/account/cancel")
    result = await handler(store, worker_policy(ONCE_A_DAY)).handle(records(click))
    [alert] = [a for a in result.interventions if a.kind == "save_desk"]
    assert alert.reasons[-1] == "fatigue:call:day"
    assert alert.suggested_action.startswith("Do not call them back before tomorrow")
    # within the caps, the same click asks for the call
    store = RecordingStore(features={"cust-1": AT_RISK})
    store.budgets = NoneSpent()  # type: ignore[attr-defined]
    result = await handler(store, worker_policy(ONCE_A_DAY)).handle(records(click))
    [alert] = [a for a in result.interventions if a.kind == "save_desk"]
    assert alert.reasons == ["visited:cancellation_page"]


async def test_an_offer_made_on_a_call_earlier_in_the_batch_counts() -> None:
    """The customer calls in and is made the voucher (the call's one offer of the day),
    then, after hanging up, visits the cancellation page: no call back today."""
    store = RecordingStore(features={"cust-1": AT_RISK})
    store.budgets = NoneSpent()  # type: ignore[attr-defined]
    rang = Call(event_id="k1", customer_id="cust-1", ts=NOW - timedelta(minutes=5),
                status="started", direction="inbound", reason="support")  # fmt: skip
    click = WebClick(event_id="w1", customer_id="cust-1", ts=NOW, page="/account/cancel")
    result = await handler(store, worker_policy(ONCE_A_DAY)).handle(records(rang, click))
    [on_call] = [d for d in result.decisions if d.channel == "call"]
    assert [o.offer_id for o in on_call.offers] == [VOUCHER.offer_id]
    [alert] = [a for a in result.interventions if a.kind == "save_desk"]
    assert alert.reasons[-1] == "fatigue:call:day"


def test_an_offer_on_no_channel_but_web_leaves_the_calls_free() -> None:
    web_only = Offer(offer_id="tips", title="Tips", channels=["web"])
    rules = ContactRules(daily_caps={"web": 1})
    capped = calls_capped(OfferCatalogue(version="w", offers=[web_only], contact_policy=rules),
                          seen({"web": 1}))  # fmt: skip
    assert capped is None
