"""Interventions: a cool-down holds back only alerts that are no more urgent, and a lapsed
customer's return is noticed even when it began with a touchpoint that cannot raise an
alert (an email opened).

The first part is pure (``interventions_for`` over hand-built features, and the cool-down
as the reference state stores it); the second drives the handler with the recording
store of ``tests/unit/test_touchpoint_handler.py``.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import msgspec
import pytest

from agents.batch_result import BatchResult
from agents.interventions import InterventionRules, interventions_for, most_urgent, too_late
from agents.letters import SourceRecord
from agents.returning_customers import returned_after
from agents.touchpoint_handler import TouchpointHandler
from feature_store import CustomerFeatures, intervention_fact
from feature_store.facts import Fact, ts_ms
from feature_store.features import ContactHistory, RecentTouchpoint
from schemas import (
    Call,
    Consent,
    Email,
    Intervention,
    Purchase,
    SocialMention,
    TouchpointEvent,
    WebClick,
    encode_touchpoint,
)
from tests.unit.factories import T0, T0_MS, apply_all, features_of
from tests.unit.test_touchpoint_handler import POLICY, RecordingStore

NOW = T0 + timedelta(seconds=2)
CUSTOMER = "cust-1"
MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)
ORDINARY = CustomerFeatures(events=10, purchases=1, spend=100.0, value=100.0, segment="growth")
AT_RISK = CustomerFeatures(events=9, purchases=4, spend=900.0, value=900.0, segment="at_risk")


def cancel_page(event_id: str = "page-1", ts: datetime = T0) -> WebClick:
    return WebClick(event_id=event_id, customer_id=CUSTOMER, ts=ts, page="/account/cancel")


def inbound(reason: str = "cancel", event_id: str = "call-1", ts: datetime = T0) -> Call:
    return Call(
        event_id=event_id,
        customer_id=CUSTOMER,
        ts=ts,
        status="started",
        direction="inbound",
        reason=reason,  # type: ignore[arg-type]
        queue="billing",
        agent_id="agent-7",
    )


def mention(sentiment: float, reach: int, event_id: str = "m-1") -> SocialMention:
    return SocialMention(event_id=event_id, customer_id=CUSTOMER, ts=T0, platform="x",
                         sentiment=sentiment, reach=reach)  # fmt: skip


def after(
    features: CustomerFeatures, kind: str, ago: timedelta, priority: int | None
) -> CustomerFeatures:
    """``features`` with the last alert of ``kind`` raised ``ago`` before NOW, at
    ``priority`` (None: stored before priorities were)."""
    contact = ContactHistory(
        last_intervention={kind: NOW - ago},
        last_intervention_priority={} if priority is None else {kind: priority},
    )
    return msgspec.structs.replace(features, contact=contact)


def raised(event: TouchpointEvent, features: CustomerFeatures) -> list[tuple[str, int]]:
    return [(i.kind, i.priority) for i in interventions_for(event, features, NOW)]


# --------------------------------------------------------------------------------------
# A cool-down holds back the same or a lower priority, not a higher one
# --------------------------------------------------------------------------------------


def test_the_customer_who_calls_to_cancel_after_the_page_reaches_the_agent() -> None:
    """The review's case: the page's call-back task (priority 2) minutes before."""
    features = after(ORDINARY, "save_desk", 5 * MINUTE, priority=2)
    [alert] = interventions_for(inbound(), features, NOW)
    assert (alert.kind, alert.priority, alert.queue, alert.agent_id) == (
        "save_desk", 1, "billing", "agent-7")  # fmt: skip


def test_an_at_risk_caller_is_not_held_back_by_a_risk_crossings_call_back() -> None:
    features = after(AT_RISK, "retention_call", 3 * timedelta(hours=1), priority=2)
    assert raised(inbound("billing"), features) == [("retention_call", 1)]


@pytest.mark.parametrize("earlier", [1, 2])
def test_the_same_or_a_lower_priority_is_held_back(earlier: int) -> None:
    assert raised(cancel_page(), after(ORDINARY, "save_desk", 5 * MINUTE, earlier)) == []


@pytest.mark.parametrize(("earlier", "expected"), [(3, [("service_recovery", 2)]), (2, [])])
def test_a_mention_is_raised_only_above_the_last_ones_priority(
    earlier: int, expected: list[tuple[str, int]]
) -> None:
    features = after(ORDINARY, "service_recovery", timedelta(hours=1), earlier)
    assert raised(mention(-0.9, 500), features) == expected  # priority 2 (reach >= 100)


def test_a_cool_down_stored_without_a_priority_holds_back_everything() -> None:
    """Stored before priorities were: it counts as the most urgent, as before."""
    assert raised(inbound(), after(ORDINARY, "save_desk", 5 * MINUTE, priority=None)) == []
    assert raised(inbound(), after(ORDINARY, "save_desk", 6 * timedelta(hours=1), None)) == [
        ("save_desk", 1)
    ]


def test_more_urgent_or_not_a_cool_down_ends_when_it_ends() -> None:
    over = after(ORDINARY, "save_desk", 6 * timedelta(hours=1), priority=1)
    assert raised(cancel_page(), over) == [("save_desk", 2)]


# the cool-down as the store keeps it (the reference state of lua/apply.lua)


def alert_fact(name: str, kind: str, ago: timedelta, priority: int | None) -> Fact:
    return intervention_fact(name, CUSTOMER, kind, NOW - ago, priority=priority)


def stored(*facts: Fact) -> CustomerFeatures:
    features = features_of(apply_all(facts, now_ms=ts_ms(NOW)), now_ms=ts_ms(NOW))
    return msgspec.structs.replace(features, value=100.0, segment="growth")


def test_the_store_keeps_the_priority_of_the_last_alert_of_each_kind() -> None:
    features = stored(alert_fact("i1", "save_desk", 5 * MINUTE, 2),
                      alert_fact("i2", "vip_attention", MINUTE, 2))  # fmt: skip
    assert features.contact.last_intervention_priority == {"save_desk": 2, "vip_attention": 2}
    assert raised(inbound(), features) == [("save_desk", 1)]
    assert raised(cancel_page(), features) == []


def test_a_newer_alert_of_priority_one_replaces_the_stored_priority() -> None:
    features = stored(alert_fact("i1", "save_desk", 5 * MINUTE, 2),
                      alert_fact("i2", "save_desk", MINUTE, 1))  # fmt: skip
    assert features.contact.last_intervention_priority == {}  # read as 1
    assert raised(inbound(event_id="call-2"), features) == []


def test_an_alert_stored_without_a_priority_after_one_with_counts_as_the_most_urgent() -> None:
    """A worker of the previous version (or a replay that does not pass the priority)
    records the newer alert: the older one's priority is not taken for it."""
    features = stored(alert_fact("i1", "save_desk", 5 * MINUTE, 2),
                      alert_fact("i2", "save_desk", MINUTE, None))  # fmt: skip
    assert features.contact.last_intervention == {"save_desk": NOW - MINUTE}
    assert features.contact.last_intervention_priority == {}
    assert raised(inbound(), features) == []


def test_the_stored_priority_is_the_newest_alerts_whatever_the_order_applied() -> None:
    features = stored(alert_fact("i2", "save_desk", MINUTE, 3),
                      alert_fact("i1", "save_desk", 5 * MINUTE, 2))  # fmt: skip
    assert features.contact.last_intervention_priority == {"save_desk": 3}


# --------------------------------------------------------------------------------------
# Within one batch: the most urgent alert of a kind wins, of equals the first
# --------------------------------------------------------------------------------------


def encoded(*events: TouchpointEvent) -> list[SourceRecord]:
    return [
        SourceRecord("touchpoints", 0, n, e.customer_id.encode(), encode_touchpoint(e))
        for n, e in enumerate(events)
    ]


async def batch(*events: TouchpointEvent) -> tuple[BatchResult, RecordingStore]:
    store = RecordingStore(features={CUSTOMER: ORDINARY})
    handler = TouchpointHandler(store, POLICY, clock=lambda: NOW)  # type: ignore[arg-type]
    result = await handler.handle(encoded(*events))
    await handler.confirm(result)
    return result, store


def triggers(result: BatchResult) -> list[tuple[str, int, str]]:
    return [(i.kind, i.priority, i.trigger_event_id) for i in result.interventions]


@pytest.mark.parametrize("order", ["page first", "call first"])
async def test_in_one_batch_the_call_wins_over_the_page_whatever_the_order(order: str) -> None:
    page, call = cancel_page(ts=T0 - 5 * MINUTE), inbound()
    result, _ = await batch(*((page, call) if order == "page first" else (call, page)))
    assert triggers(result) == [("save_desk", 1, "call-1")]
    assert result.interventions[0].agent_id == "agent-7"


async def test_in_one_batch_the_first_of_equally_urgent_alerts_wins() -> None:
    result, _ = await batch(cancel_page("page-1"), cancel_page("page-2", T0 + MINUTE))
    assert triggers(result) == [("save_desk", 2, "page-1")]


async def test_confirm_stores_the_priority_with_the_cool_down() -> None:
    result, store = await batch(cancel_page())
    [alert] = result.interventions
    [facts] = store.facts
    assert intervention_fact(alert.intervention_id, CUSTOMER, "save_desk", NOW, priority=2) in facts
    assert ("latest", "last_intervention_priority:save_desk", "2") in [
        u for f in facts for u in f.updates
    ]


async def test_a_touchpoint_older_than_the_max_age_raises_no_alert_but_is_counted() -> None:
    """A call re-driven two hours later is over: no save desk for it (counted as too
    late), and it does not keep the alert from a call of now in the same batch."""
    late = inbound(event_id="call-late", ts=NOW - timedelta(hours=2))
    result, _ = await batch(late, inbound(event_id="call-now"))
    assert triggers(result) == [("save_desk", 1, "call-now")]
    assert [(i.kind, i.trigger_event_id) for i in result.too_late] == [("save_desk", "call-late")]
    just_in_time = inbound(event_id="call-hour", ts=NOW - timedelta(hours=1))
    result, _ = await batch(just_in_time)
    assert triggers(result) == [("save_desk", 1, "call-hour")] and result.too_late == []


@pytest.mark.parametrize(
    ("redriven", "raised"), [(False, True), (True, False)], ids=["sent-now", "re-driven"]
)
async def test_a_call_from_a_clock_behind_is_judged_by_when_it_reached_kafka(
    redriven: bool, raised: bool
) -> None:
    """Its source's clock is two hours behind (or it writes local time as UTC), but the
    call reached Kafka a second ago: the customer is on the line. A re-driven record was
    sent again now, so its own time is all there is to go by."""
    call = inbound(event_id="call-skewed", ts=NOW - timedelta(hours=2))
    (record,) = encoded(call)
    record = dataclasses.replace(
        record, produced_ms=ts_ms(NOW - timedelta(seconds=1)),
        redriven_from=b"touchpoints-dlq:0:7" if redriven else None,
    )  # fmt: skip
    store = RecordingStore(features={CUSTOMER: ORDINARY})
    handler = TouchpointHandler(store, POLICY, clock=lambda: NOW)  # type: ignore[arg-type]
    result = await handler.handle([record])
    assert (triggers(result) == [("save_desk", 1, "call-skewed")]) is raised
    assert (result.too_late == []) is raised


async def test_an_alert_shows_the_risk_when_a_later_touchpoint_shares_its_batch() -> None:
    """Risk is watched at the customer's newest touchpoint of a batch; the call before it
    raises its alert with the risk the model gives the call all the same, as it would
    have alone (a screen reads ``context.risk`` as a number)."""
    call, click = (
        inbound(ts=NOW - MINUTE),
        WebClick(event_id="click-after", customer_id=CUSTOMER, ts=NOW, page="/home"),
    )
    risks = []
    for events in ((call,), (call, click)):
        store = RecordingStore(features={CUSTOMER: ORDINARY})
        handler = TouchpointHandler(store, POLICY, clock=lambda: NOW)  # type: ignore[arg-type]
        (alert,) = (await handler.handle(encoded(*events))).interventions
        assert alert.kind == "save_desk" and alert.context is not None
        risks.append(alert.context.risk)
    assert risks[0] is not None and risks[1] == risks[0]


async def test_a_max_age_of_zero_raises_alerts_however_late() -> None:
    store = RecordingStore(features={CUSTOMER: ORDINARY})
    handler = TouchpointHandler(store, POLICY, clock=lambda: NOW,  # type: ignore[arg-type]
                                rules=InterventionRules(max_age_s=0))  # fmt: skip
    result = await handler.handle(encoded(inbound(ts=NOW - timedelta(days=3))))
    assert triggers(result) == [("save_desk", 1, "call-1")] and result.too_late == []


def test_a_risk_crossing_on_an_at_risk_callers_call_is_said_and_never_too_late() -> None:
    """The call asks for a retention call already: it carries the crossing's reason, so
    that, decided late, the call-back the crossing asks for is not dropped with it."""
    call = inbound(reason="billing", ts=NOW - timedelta(hours=2))
    (alert,) = interventions_for(call, AT_RISK, NOW, risk=0.81, risk_crossed=True)
    assert (alert.kind, alert.reasons) == (
        "retention_call",
        ["segment:at_risk", "risk_crossed:0.81"],
    )
    assert not too_late(alert, InterventionRules())


def test_most_urgent_keeps_customers_and_kinds_apart() -> None:
    def alert(customer: str, kind: str, priority: int, trigger: str) -> Intervention:
        return Intervention(intervention_id=trigger, customer_id=customer, ts=NOW, kind=kind,
                            priority=priority, trigger_event_id=trigger, reasons=[],  # type: ignore[arg-type]
                            suggested_action="")  # fmt: skip

    kept = most_urgent([alert("a", "save_desk", 2, "1"), alert("b", "save_desk", 3, "2"),
                        alert("a", "win_back", 2, "3"), alert("a", "save_desk", 1, "4"),
                        alert("b", "save_desk", 3, "5")])  # fmt: skip
    assert [a.trigger_event_id for a in kept] == ["2", "3", "4"]


# --------------------------------------------------------------------------------------
# Win-back: the return may begin with a touchpoint that cannot raise an alert
# --------------------------------------------------------------------------------------

VALUABLE = dict(events=30, purchases=6, spend=2400.0, value=900.0, segment="dangling")
CLICK = WebClick(event_id="click-1", customer_id=CUSTOMER, ts=T0, page="/new")


def opened_email(event_id: str, ts: datetime) -> Email:
    return Email(event_id=event_id, customer_id=CUSTOMER, ts=ts, action="opened")


def came_back(*before: tuple[timedelta, str]) -> CustomerFeatures:
    """A valuable customer whose touchpoints before CLICK were ``(how long before, type)``,
    newest first."""
    recent = [RecentTouchpoint(T0, "web_click", "click-1")]
    recent += [RecentTouchpoint(T0 - ago, kind, f"e{n}") for n, (ago, kind) in enumerate(before)]
    return CustomerFeatures(**VALUABLE, recent=recent)  # type: ignore[arg-type]


def win_backs(event: TouchpointEvent, features: CustomerFeatures) -> list[list[str]]:
    return [i.reasons for i in interventions_for(event, features, NOW) if i.kind == "win_back"]


@pytest.mark.parametrize("way_back", ["email", "survey", "consent"])
def test_win_back_when_the_return_began_with_what_cannot_raise_an_alert(way_back: str) -> None:
    """The review's case: the win-back email opened, then the click it brought."""
    features = came_back((30 * timedelta(seconds=1), way_back), (120 * DAY, "purchase"))
    assert win_backs(CLICK, features) == [["returned_after_days:119"]]


def test_the_lapse_is_counted_to_the_first_touchpoint_of_the_return() -> None:
    features = came_back((MINUTE, "email"), (2 * DAY, "survey"), (3 * DAY, "email"),
                         (100 * DAY, "purchase"))  # fmt: skip
    assert win_backs(CLICK, features) == [["returned_after_days:97"]]


def test_no_win_back_when_a_visit_since_the_return_could_have_raised_it() -> None:
    for kind in ("web_click", "purchase"):
        features = came_back((MINUTE, "email"), (DAY, kind), (120 * DAY, "purchase"))
        assert win_backs(CLICK, features) == [], kind


@pytest.mark.parametrize("kind", ["call", "social_mention"])
def test_win_back_when_the_return_began_with_a_call_or_mention_that_raised_none(
    kind: str,
) -> None:
    """A kind word in public or an outbound call they answered cannot raise an alert;
    the recent list does not say which it was, the contact history does."""
    features = came_back((DAY, kind), (120 * DAY, "purchase"))
    assert win_backs(CLICK, features) == [["returned_after_days:119"]]


def test_one_win_back_per_return_even_after_its_cool_down() -> None:
    """An inbound call began the return 40 days ago and raised the win-back then."""
    began = T0 - 40 * DAY
    welcomed = msgspec.structs.replace(
        came_back((40 * DAY, "call"), (160 * DAY, "purchase")),
        contact=ContactHistory(last_intervention={"win_back": began + MINUTE}),
    )
    assert win_backs(CLICK, welcomed) == []
    # a win-back for an earlier return does not count for this one
    earlier = msgspec.structs.replace(
        welcomed, contact=ContactHistory(last_intervention={"win_back": began - 200 * DAY})
    )
    assert win_backs(CLICK, earlier) == [["returned_after_days:120"]]


def test_no_win_back_for_a_customer_who_kept_opening_emails() -> None:
    """Never away: opening the newsletter every week is their own activity."""
    weekly = [(timedelta(weeks=w), "email") for w in range(1, 19)]
    assert win_backs(CLICK, came_back(*weekly, (130 * DAY, "purchase"))) == []


def test_an_email_the_customer_opened_does_not_raise_the_win_back_itself() -> None:
    """Only a touchpoint that can raise an alert does (the handler reads no features for
    an email opened but to decide an offer; the click after it raises the win-back)."""
    opened = opened_email("open-1", T0)
    features = came_back((120 * DAY, "purchase"))
    assert win_backs(opened, features) == []


def test_returned_after_is_measured_from_the_event_when_nothing_came_before() -> None:
    lapse = timedelta(days=90)
    assert returned_after(CLICK, [], lapse) is None
    assert returned_after(CLICK, [RecentTouchpoint(T0, "web_click", "click-1")], lapse) is None
    only_emails = [RecentTouchpoint(T0 - DAY, "email", "e1")]
    assert returned_after(CLICK, only_emails, lapse) is None


async def test_win_back_through_the_handler_with_features_from_touchpoints() -> None:
    """Purchases 120 days ago, the win-back email opened, the click 30 s later, with
    features as the store derives them."""
    old = [Purchase(event_id=f"p{i}", customer_id=CUSTOMER, ts=T0 - 120 * DAY, order_id=f"o{i}",
                    amount=800.0, currency="EUR") for i in range(3)]  # fmt: skip
    opened = opened_email("open-1", T0 - timedelta(seconds=30))
    features = features_of(apply_all([*old, opened, CLICK]), now_ms=T0_MS)
    assert [r.type for r in features.recent[:2]] == ["web_click", "email"]
    store = RecordingStore(features={CUSTOMER: features})
    handler = TouchpointHandler(store, POLICY, clock=lambda: NOW)  # type: ignore[arg-type]
    result = await handler.handle(encoded(opened, CLICK))
    assert [(i.kind, i.trigger_event_id, i.reasons) for i in result.interventions] == [
        ("win_back", "click-1", ["returned_after_days:119"])
    ]


async def test_where_the_catalogue_makes_calls_opt_in_the_handler_raises_no_call_back() -> None:
    """The call-back wiring: the batch's catalogue says calls need consent granted."""
    from agents.catalogue_holder import CatalogueHolder
    from agents.contact_policy import ContactPolicy
    from agents.control_group import ControlGroup
    from agents.offer_rules import RuleBasedOfferPolicy
    from schemas import ContactRules
    from tests.unit.test_touchpoint_handler import CATALOGUE

    rules = ContactRules(consent_required=["call"])
    opt_in = msgspec.structs.replace(CATALOGUE, contact_policy=rules)
    policy = RuleBasedOfferPolicy(CatalogueHolder(opt_in), ContactPolicy(ControlGroup("t", 0.0)))
    for consent, expected in (({}, []), ({"call": True}, [("save_desk", 2, "page-1")])):
        customer = msgspec.structs.replace(ORDINARY, consent=consent)
        store = RecordingStore(features={CUSTOMER: customer})
        handler = TouchpointHandler(store, policy, clock=lambda: NOW)  # type: ignore[arg-type]
        result = await handler.handle(encoded(cancel_page()))
        assert triggers(result) == expected


def withdrawal(event_id: str = "off-1", ts: datetime = T0 + MINUTE) -> Consent:
    return Consent(event_id=event_id, customer_id=CUSTOMER, ts=ts, channel="call", granted=False)


async def decided_together(*events: TouchpointEvent) -> BatchResult:
    """``events`` in one batch, with features as read after it applied them (the
    customer's consent to calls withdrawn)."""
    withdrawn = msgspec.structs.replace(ORDINARY, consent={"call": False})
    store = RecordingStore(features={CUSTOMER: withdrawn})
    handler = TouchpointHandler(store, POLICY, clock=lambda: NOW)  # type: ignore[arg-type]
    return await handler.handle(encoded(*events))


async def test_a_withdrawal_in_the_batch_of_the_call_back_stops_it_as_in_the_next() -> None:
    """The save desk raised while the customer was on the line is not recorded yet when
    their withdrawal is decided: the batch counts it, as the next batch would."""
    result = await decided_together(inbound(), withdrawal())
    assert triggers(result) == [("save_desk", 1, "call-1"), ("do_not_call", 1, "off-1")]


async def test_an_alert_set_aside_as_too_late_leaves_no_call_back_to_stop() -> None:
    late = inbound(event_id="call-late", ts=NOW - timedelta(hours=2))
    result = await decided_together(late, withdrawal())
    assert triggers(result) == []
    assert [i.kind for i in result.too_late] == ["save_desk"]


@pytest.mark.parametrize("order", ["late first", "late last"])
async def test_a_late_touchpoint_is_counted_too_late_whatever_its_place_in_the_batch(
    order: str,
) -> None:
    """The alerts raised earlier in a batch tell a do-not-call of a call-back, and change
    nothing else: a late call after a timely one is still counted too late."""
    late, now = inbound(event_id="call-late", ts=NOW - timedelta(hours=2)), inbound("cancel")
    result, _ = await batch(*((late, now) if order == "late first" else (now, late)))
    assert triggers(result) == [("save_desk", 1, "call-1")]
    assert [(i.kind, i.trigger_event_id) for i in result.too_late] == [("save_desk", "call-late")]
