"""agents.interventions: which touchpoints reach a contact-centre screen, and how urgently.

One test per rule: each fails when its rule is taken out of ``agents/interventions.py``
or the modules it draws on (``agents/alert_actions.py``, ``agents/alert_ids.py``,
``agents/returning_customers.py``), or its boundary moved, and passes for every other
rule. The customer features are built by hand, except in the last section, which derives
them from touchpoints with the reference state (``tests/unit/factories.py``).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import msgspec
import pytest

from agents.alert_actions import ACTIONS, NO_CALL_OFFER_ACTIONS
from agents.alert_ids import CUSTOMER_NAMESPACE, NAMESPACE, intervention_id_for
from agents.interventions import InterventionRules, interventions_for, might_intervene, too_late
from feature_store import CustomerFeatures
from feature_store.features import ContactHistory, RecentTouchpoint
from schemas import (
    Call,
    Consent,
    Email,
    Intervention,
    Purchase,
    SocialMention,
    Survey,
    TouchpointEvent,
    WebClick,
)
from tests.unit.factories import T0, apply_all, at, call_started, click, features_of, purchase

NOW = T0 + timedelta(seconds=2)  # decided two seconds after the trigger
CUSTOMER = "cust-1"
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

# A customer no rule cares about: modest value, happy, active yesterday.
ORDINARY = CustomerFeatures(
    events=8,
    purchases=1,
    spend=50.0,
    value=50.0,
    segment="growth",
    recent=[RecentTouchpoint(T0 - DAY, "web_click", "older-1")],
)
AT_RISK = CustomerFeatures(events=9, purchases=4, spend=900.0, value=900.0, segment="at_risk")
MODEL = CustomerFeatures(events=12, purchases=3, spend=450.0, value=120.0, segment="model")


def customer(**changes: object) -> CustomerFeatures:
    """ORDINARY with some fields changed."""
    fields = {f: getattr(ORDINARY, f) for f in CustomerFeatures.__struct_fields__}
    fields.update(changes)
    return CustomerFeatures(**fields)  # type: ignore[arg-type]


def call(
    reason: str = "support",
    *,
    status: str = "started",
    direction: str = "inbound",
    queue: str | None = None,
    agent_id: str | None = None,
    event_id: str = "call-1",
    ts: datetime = T0,
) -> Call:
    return Call(
        event_id=event_id,
        customer_id=CUSTOMER,
        ts=ts,
        status=status,  # type: ignore[arg-type]
        direction=direction,  # type: ignore[arg-type]
        reason=reason,  # type: ignore[arg-type]
        queue=queue,
        agent_id=agent_id,
    )


def web(page: str = "/offers", event_id: str = "click-1", ts: datetime = T0) -> WebClick:
    return WebClick(event_id=event_id, customer_id=CUSTOMER, ts=ts, page=page)


def social(sentiment: float, reach: int | None, event_id: str = "mention-1") -> SocialMention:
    return SocialMention(
        event_id=event_id,
        customer_id=CUSTOMER,
        ts=T0,
        platform="x",
        sentiment=sentiment,
        reach=reach,
    )


def buy(event_id: str = "buy-1", ts: datetime = T0) -> Purchase:
    return Purchase(
        event_id=event_id, customer_id=CUSTOMER, ts=ts, order_id="o1", amount=10, currency="EUR"
    )


def alerts(
    event: TouchpointEvent,
    features: CustomerFeatures | None = ORDINARY,
    now: datetime = NOW,
    rules: InterventionRules = InterventionRules(),  # noqa: B008 (frozen)
) -> list[Intervention]:
    return interventions_for(event, features, now, rules)


def kinds(found: list[Intervention]) -> list[str]:
    return [i.kind for i in found]


def only(found: list[Intervention], kind: str) -> Intervention:
    matching = [i for i in found if i.kind == kind]
    assert len(matching) == 1, kinds(found)
    return matching[0]


def lapsed(days: float, **changes: object) -> CustomerFeatures:
    """A customer whose newest touchpoint before T0 is ``days`` old."""
    recent = [RecentTouchpoint(T0 - timedelta(days=days), "purchase", "old-1")]
    return customer(recent=recent, **changes)


def test_an_ordinary_customer_doing_ordinary_things_raises_nothing() -> None:
    for event in (call(), call("sales"), web(), social(-0.2, 50_000), social(0.9, 50_000), buy()):
        assert alerts(event) == [], event


# --------------------------------------------------------------------------------------
# save_desk
# --------------------------------------------------------------------------------------


def test_save_desk_on_an_inbound_call_to_cancel() -> None:
    found = alerts(call("cancel"))
    assert kinds(found) == ["save_desk"]
    alert = found[0]
    assert (alert.priority, alert.queue) == (1, "retention")  # the default queue
    assert alert.reasons == ["call_reason:cancel"]
    assert alert.suggested_action == ACTIONS["save_desk"]


def test_save_desk_keeps_the_queue_the_call_came_in_on() -> None:
    assert only(alerts(call("cancel", queue="billing-line")), "save_desk").queue == "billing-line"


@pytest.mark.parametrize("blank", ["", "  "])
def test_a_call_with_a_blank_queue_raises_alerts_for_every_queue(blank: str) -> None:
    """A CTI sending "queue": "" had its VIP and retention alerts kept off every screen
    that followed a queue, though the console showed them as for any queue."""
    valuable = customer(value=5_000.0, segment="at_risk")
    found = alerts(call("cancel", queue=blank), features=valuable)
    assert {(a.kind, a.queue) for a in found} == {
        ("save_desk", "retention"),
        ("retention_call", None),
    }


@pytest.mark.parametrize("reason", ["sales", "support", "billing", "complaint", "other"])
def test_no_save_desk_on_calls_for_other_reasons(reason: str) -> None:
    assert "save_desk" not in kinds(alerts(call(reason)))


@pytest.mark.parametrize(
    ("status", "direction"), [("ended", "inbound"), ("started", "outbound"), ("ended", "outbound")]
)
def test_call_rules_only_look_at_inbound_calls_that_start(status: str, direction: str) -> None:
    # every call rule would fire for this customer on an inbound call to cancel a complaint
    features = customer(segment="at_risk", value=900.0, complaints_30d=5)
    event = call("cancel", status=status, direction=direction)
    assert alerts(event, features) == []
    assert len(alerts(call("cancel"), features)) == 2  # save_desk and retention_call


@pytest.mark.parametrize("page", ["/account/cancel", "/subscription/cancel-confirm", "/cancel"])
def test_save_desk_on_a_visit_to_a_cancellation_page(page: str) -> None:
    found = alerts(web(page))
    assert kinds(found) == ["save_desk"]
    assert (found[0].priority, found[0].queue) == (2, "retention")
    assert found[0].reasons == ["visited:cancellation_page"]
    assert found[0].agent_id is None


@pytest.mark.parametrize("page", ["/offers", "/account", "/help/returns"])
def test_no_save_desk_on_other_pages(page: str) -> None:
    assert alerts(web(page)) == []


# --------------------------------------------------------------------------------------
# retention_call and vip_attention
# --------------------------------------------------------------------------------------


def test_retention_call_on_an_inbound_call_from_an_at_risk_customer() -> None:
    found = alerts(call(queue="support-line", agent_id="agent-7"), AT_RISK)
    assert kinds(found) == ["retention_call"]  # at_risk beats vip_attention
    alert = found[0]
    assert (alert.priority, alert.queue, alert.agent_id) == (1, "support-line", "agent-7")
    assert alert.reasons == ["segment:at_risk"]


def test_a_retention_call_suggests_no_offer_to_a_customer_who_withdrew_call_consent() -> None:
    """The engine offered them nothing on their inbound call (a withdrawal holds), yet
    the alert for the same call told the agent to offer the voucher by hand."""
    withdrawn = customer(segment="at_risk", consent={"call": False})
    (alert,) = interventions_for(call(), withdrawn, NOW)
    assert alert.kind == "retention_call"
    assert alert.suggested_action == NO_CALL_OFFER_ACTIONS["retention_call"]
    (usual,) = interventions_for(call(), AT_RISK, NOW)
    assert usual.suggested_action == ACTIONS["retention_call"]
    # opt-in with no grant: an inbound call needs none, so the usual action
    (opt_in,) = interventions_for(call(), AT_RISK, NOW, call_needs_grant=True)
    assert opt_in.suggested_action == ACTIONS["retention_call"]


def test_a_retention_call_suggests_no_offer_to_a_customer_in_the_offers_control_group() -> None:
    (usual,) = interventions_for(call(), AT_RISK, NOW)
    assert "voucher" in usual.suggested_action
    (held_out,) = interventions_for(call(), AT_RISK, NOW, offers_held_out=True)
    assert held_out.kind == "retention_call" and "voucher" not in held_out.suggested_action
    assert "make no offer" in held_out.suggested_action


@pytest.mark.parametrize("segment", ["new", "growth", "dangling"])
def test_no_retention_call_for_other_segments(segment: str) -> None:
    assert alerts(call(), customer(segment=segment)) == []


def test_no_retention_call_when_an_at_risk_customer_only_browses() -> None:
    assert alerts(web(), AT_RISK) == []


@pytest.mark.parametrize("value", [500.0, 2_000.0])
def test_vip_attention_on_an_inbound_call_from_a_valuable_customer(value: float) -> None:
    found = alerts(call(queue="sales-line"), customer(value=value))
    assert kinds(found) == ["vip_attention"]
    assert (found[0].priority, found[0].queue) == (2, "sales-line")
    assert found[0].reasons == [f"value:{value:.0f}"]


def test_vip_attention_for_a_model_customer_whatever_their_value() -> None:
    assert kinds(alerts(call(), MODEL)) == ["vip_attention"]


def test_no_vip_attention_just_below_high_value() -> None:
    assert alerts(call(), customer(value=499.99)) == []


def test_high_value_comes_from_the_rules() -> None:
    rules = InterventionRules(high_value=1_000.0)
    assert alerts(call(), customer(value=900.0), rules=rules) == []
    assert kinds(alerts(call(), customer(value=1_000.0), rules=rules)) == ["vip_attention"]


# --------------------------------------------------------------------------------------
# service_recovery
# --------------------------------------------------------------------------------------


def test_service_recovery_on_a_complaint_call_after_repeated_complaints() -> None:
    found = alerts(call("complaint", queue="care"), customer(complaints_30d=3))
    assert kinds(found) == ["service_recovery"]
    assert (found[0].priority, found[0].queue) == (1, "care")
    assert found[0].reasons == ["complaints_30d:3"]


def test_no_service_recovery_below_repeat_complaints() -> None:
    assert alerts(call("complaint"), customer(complaints_30d=2)) == []


def test_no_service_recovery_when_a_frequent_complainer_calls_about_something_else() -> None:
    assert alerts(call("support"), customer(complaints_30d=7)) == []


def test_service_recovery_on_a_strongly_negative_mention() -> None:
    found = alerts(social(-0.5, 250))
    assert kinds(found) == ["service_recovery"]
    alert = found[0]
    assert (alert.queue, alert.agent_id) == ("social", None)
    assert alert.reasons == ["negative_mention:-0.50", "reach:250"]


@pytest.mark.parametrize("sentiment", [-0.49, -0.1, 0.0, 0.8])
def test_no_service_recovery_on_a_mildly_negative_or_positive_mention(sentiment: float) -> None:
    assert alerts(social(sentiment, 1_000_000)) == []


@pytest.mark.parametrize(
    ("reach", "value", "priority"),
    [
        (10_000, 50.0, 1),  # wide reach
        (2_000_000, 50.0, 1),
        (9_999, 50.0, 2),
        (100, 50.0, 2),
        (99, 50.0, 3),
        (0, 50.0, 3),
        (None, 50.0, 3),  # reach unknown counts as none
        (None, 500.0, 1),  # a valuable customer, whatever the reach
        (99, 800.0, 1),
    ],
)
def test_social_priority_by_reach_and_value(reach: int | None, value: float, priority: int) -> None:
    found = alerts(social(-0.9, reach), customer(value=value))
    assert only(found, "service_recovery").priority == priority


# --------------------------------------------------------------------------------------
# win_back
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("event", [web(), call(), buy()], ids=["browse", "call", "buy"])
def test_win_back_when_a_valuable_customer_returns_after_90_days(event: TouchpointEvent) -> None:
    found = alerts(event, lapsed(90, value=600.0, segment="growth"))
    alert = only(found, "win_back")
    assert (alert.priority, alert.queue) == (2, None)
    assert alert.reasons == ["returned_after_days:90"]


def test_win_back_counts_past_spend_for_a_lapsed_customer_whose_value_has_dropped() -> None:
    features = lapsed(120, value=40.0, spend=500.0)
    assert kinds(alerts(web(), features)) == ["win_back"]


def test_a_crossing_brought_by_an_unsubscribe_raises_a_retention_call_but_no_win_back() -> None:
    """A churn signal that cannot raise an alert of its own still carries a crossing (the
    worker asks for it); a lapsed customer's email is not their return, though."""
    unsubscribed = Email(event_id="unsub-1", customer_id=CUSTOMER, ts=T0, action="unsubscribed")
    features = lapsed(120, value=600.0, segment="growth")
    found = interventions_for(unsubscribed, features, NOW, risk=0.81, risk_crossed=True)
    alert = only(found, "retention_call")
    assert (alert.queue, alert.reasons, alert.trigger_event_id) == (
        "retention", ["risk_crossed:0.81"], "unsub-1")  # fmt: skip
    assert interventions_for(unsubscribed, features, NOW) == []


@pytest.mark.parametrize("channel", ["call", "all"])
def test_a_withdrawal_read_after_a_newer_grant_is_no_return(channel: str) -> None:
    """A withdrawal of calls may raise the word not to call, and nothing else: read late,
    after a grant dated later (which holds, so calls are still allowed), it welcomed a
    lapsed customer back, and the alert's cool-down then kept their real return quiet."""
    withdrawal = Consent(event_id="w-1", customer_id=CUSTOMER, ts=T0, channel=channel,
                         granted=False)  # fmt: skip
    features = lapsed(120, value=600.0, segment="growth", consent={"call": True})
    assert features.consents_to("call")
    assert "win_back" not in kinds(alerts(withdrawal, features))
    assert kinds(alerts(web(), features)) == ["win_back"]  # their return, when it comes


def test_no_win_back_before_90_days() -> None:
    assert alerts(web(), lapsed(89.99, value=600.0, segment="growth")) == []


def test_no_win_back_for_a_customer_of_little_value() -> None:
    assert alerts(web(), lapsed(400, value=499.0, spend=499.0)) == []


def test_win_back_uses_the_newest_touchpoint_before_the_event_not_a_later_one() -> None:
    event = web(event_id="click-now")
    recent = [  # newest first, as read from the store
        RecentTouchpoint(T0 + 2 * DAY, "web_click", "arrived-late"),  # after the event
        RecentTouchpoint(T0, "web_click", "click-now"),  # the event itself
        RecentTouchpoint(T0 - 120 * DAY, "purchase", "old-1"),
    ]
    found = alerts(event, customer(value=600.0, recent=recent))
    assert only(found, "win_back").reasons == ["returned_after_days:120"]


def test_win_back_uses_the_newest_touchpoint_before_the_event_not_an_older_one() -> None:
    recent = [
        RecentTouchpoint(T0, "web_click", "click-1"),
        RecentTouchpoint(T0 - 10 * DAY, "web_click", "recent-1"),
        RecentTouchpoint(T0 - 200 * DAY, "purchase", "old-1"),
    ]
    assert alerts(web(), customer(value=600.0, segment="growth", recent=recent)) == []


def test_no_win_back_without_an_earlier_touchpoint() -> None:
    only_this = [RecentTouchpoint(T0, "web_click", "click-1")]
    assert alerts(web(), customer(value=600.0, segment="growth", recent=only_this)) == []
    assert alerts(web(), customer(value=600.0, segment="growth", recent=[])) == []


# --------------------------------------------------------------------------------------
# Cool-downs
# --------------------------------------------------------------------------------------

TRIGGERS: dict[str, tuple[TouchpointEvent, CustomerFeatures, timedelta]] = {
    # kind: (trigger, features, its cool-down)
    "save_desk": (web("/cancel"), ORDINARY, 6 * HOUR),
    "retention_call": (call(), AT_RISK, 24 * HOUR),
    "vip_attention": (call(), MODEL, 24 * HOUR),
    "service_recovery": (social(-0.9, 50), ORDINARY, 24 * HOUR),
    "win_back": (web(), lapsed(100, value=600.0, segment="growth"), 30 * DAY),
}


def with_last(features: CustomerFeatures, kind: str, last: datetime) -> CustomerFeatures:
    fields = {f: getattr(features, f) for f in CustomerFeatures.__struct_fields__}
    fields["contact"] = ContactHistory(last_intervention={kind: last})
    return CustomerFeatures(**fields)  # type: ignore[arg-type]


def test_every_kind_has_a_trigger_here() -> None:
    # a do-not-call has no cool-down: it is raised once per call-back it stops (below)
    assert set(TRIGGERS) == set(ACTIONS) - {"do_not_call"} == set(InterventionRules().cooldown_s)
    for kind, (event, features, _) in TRIGGERS.items():
        assert kinds(alerts(event, features)) == [kind]


@pytest.mark.parametrize("kind", list(TRIGGERS))
def test_no_alert_inside_the_cool_down(kind: str) -> None:
    event, features, cooldown = TRIGGERS[kind]
    for ago in (timedelta(0), HOUR, cooldown - timedelta(seconds=1)):
        assert alerts(event, with_last(features, kind, NOW - ago)) == [], ago


@pytest.mark.parametrize("kind", list(TRIGGERS))
def test_alert_again_once_the_cool_down_is_over(kind: str) -> None:
    event, features, cooldown = TRIGGERS[kind]
    for ago in (cooldown, cooldown + DAY):
        assert kinds(alerts(event, with_last(features, kind, NOW - ago))) == [kind], ago


@pytest.mark.parametrize("kind", list(TRIGGERS))
def test_a_cool_down_holds_back_only_its_own_kind(kind: str) -> None:
    event, features, _ = TRIGGERS[kind]
    others = ContactHistory(last_intervention={k: NOW for k in TRIGGERS if k != kind})
    fields = {f: getattr(features, f) for f in CustomerFeatures.__struct_fields__}
    fields["contact"] = others
    assert kinds(alerts(event, CustomerFeatures(**fields))) == [kind]  # type: ignore[arg-type]


def test_cool_downs_come_from_the_rules() -> None:
    rules = InterventionRules(cooldown_s={**InterventionRules().cooldown_s, "save_desk": 60})
    features = with_last(ORDINARY, "save_desk", NOW - timedelta(seconds=60))
    assert kinds(alerts(web("/cancel"), features, rules=rules)) == ["save_desk"]
    assert alerts(web("/cancel"), features) == []  # the default cool-down is 6 h


def test_a_cool_down_held_back_kind_leaves_the_others_of_the_same_call() -> None:
    features = with_last(customer(segment="at_risk", complaints_30d=4), "retention_call", NOW)
    assert kinds(alerts(call("complaint"), features)) == ["service_recovery"]


# --------------------------------------------------------------------------------------
# One call, several kinds; ids; what the alert carries
# --------------------------------------------------------------------------------------


def test_one_call_can_raise_several_kinds_once_each() -> None:
    features = customer(segment="at_risk", value=900.0, complaints_30d=3)
    found = alerts(call("complaint"), features)
    assert kinds(found) == ["retention_call", "service_recovery"]
    features = lapsed(100, segment="at_risk", value=900.0)
    assert kinds(alerts(call("cancel"), features)) == ["save_desk", "retention_call", "win_back"]


def test_intervention_ids_are_deterministic() -> None:
    event = call("cancel", event_id="call-42")
    features = customer(segment="at_risk", value=900.0)
    first = alerts(event, features, now=NOW)
    replayed = alerts(event, features, now=NOW + HOUR)
    assert [i.intervention_id for i in first] == [i.intervention_id for i in replayed]
    for alert in first:
        assert alert.intervention_id == intervention_id_for(alert.kind, "call-42", CUSTOMER)
        name = f"{alert.kind}:{len(CUSTOMER)}:{CUSTOMER}:call-42"
        assert alert.intervention_id == str(uuid.uuid5(CUSTOMER_NAMESPACE, name))
        # not the older form's, from the event id alone
        assert alert.intervention_id != str(uuid.uuid5(NAMESPACE, f"{alert.kind}:call-42"))
    assert len({i.intervention_id for i in first}) == len(first) == 2  # one per kind
    # a worker names the customer by their keyed hash
    (named, _) = interventions_for(event, features, NOW, subject="ab12")
    assert named.intervention_id == intervention_id_for(named.kind, "call-42", "ab12")


def test_two_customers_alerts_on_events_that_share_an_id_have_ids_of_their_own() -> None:
    ann = alerts(web("/cancel", event_id="click-0001"))
    ben = alerts(msgspec.structs.replace(web("/cancel", event_id="click-0001"), customer_id="ben"))
    assert [i.kind for i in ann] == [i.kind for i in ben] == ["save_desk"]
    assert ann[0].intervention_id != ben[0].intervention_id


def test_intervention_ids_differ_per_trigger_event() -> None:
    one = alerts(web("/cancel", event_id="click-1"))
    two = alerts(web("/cancel", event_id="click-2"))
    assert one[0].intervention_id != two[0].intervention_id


def test_an_alert_names_its_customer_trigger_and_times() -> None:
    event = call("cancel", agent_id="agent-3", ts=T0 - timedelta(milliseconds=250))
    alert = only(alerts(event), "save_desk")
    assert alert.customer_id == CUSTOMER
    assert (alert.trigger_event_id, alert.trigger_ts) == ("call-1", event.ts)
    assert alert.ts == NOW  # when it was decided
    assert alert.agent_id == "agent-3"


def test_the_context_shows_segment_value_and_recent_touchpoints_without_ids() -> None:
    recent = [
        RecentTouchpoint(T0 - timedelta(minutes=m), kind, f"evt-{m}")
        for m, kind in [(0, "call"), (3, "web_click"), (61, "email"), (1440, "purchase")]
        + [(2000 + m, "web_click") for m in range(4)]
    ]
    features = customer(segment="dangling", value=123.45, recent=recent)
    context = only(alerts(call("cancel"), features), "save_desk").context
    assert (context.segment, context.value, context.risk) == ("dangling", 123.45, None)
    assert context.recent_touchpoints == [
        "2026-11-23 09:00 call",
        "2026-11-23 08:57 web_click",
        "2026-11-23 07:59 email",
        "2026-11-22 09:00 purchase",
        "2026-11-21 23:40 web_click",
    ]  # the newest five
    for line in context.recent_touchpoints:
        assert CUSTOMER not in line and "evt-" not in line
    assert context.currency is None  # none configured: amounts summed as they came
    priced = only(alerts(call("cancel"), features, rules=InterventionRules(currency="EUR")),
                  "save_desk")  # fmt: skip
    assert priced.context.currency == "EUR"  # what the value is counted in


@pytest.mark.parametrize(
    "event",
    [call("cancel"), call("complaint"), web("/cancel"), social(-1.0, 1_000_000), buy()],
    ids=["cancel_call", "complaint_call", "cancel_page", "mention", "purchase"],
)
def test_no_alerts_without_features(event: TouchpointEvent) -> None:
    assert alerts(event, None) == []


# --------------------------------------------------------------------------------------
# might_intervene: the worker's cheap first look (agents.decision_plan)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (call(), True),
        (call(status="ended"), False),
        (call(direction="outbound"), False),
        (web(), True),
        (buy(), True),
        (social(-0.1, None), True),
        (social(0.0, 10_000), False),
        (Email(event_id="m1", customer_id=CUSTOMER, ts=T0, action="opened"), False),
        (Survey(event_id="s1", customer_id=CUSTOMER, ts=T0, score=1, scale="csat5"), False),
        (Consent(event_id="k1", customer_id=CUSTOMER, ts=T0, channel="all", granted=True), False),
        (Consent(event_id="k2", customer_id=CUSTOMER, ts=T0, channel="all", granted=False), True),
        (Consent(event_id="k3", customer_id=CUSTOMER, ts=T0, channel="call", granted=False), True),
        (Consent(event_id="k4", customer_id=CUSTOMER, ts=T0, channel="sms", granted=False), False),
    ],
)
def test_might_intervene(event: TouchpointEvent, expected: bool) -> None:
    assert might_intervene(event) is expected


def test_every_trigger_passes_the_first_look() -> None:
    for event, _, _ in TRIGGERS.values():
        assert might_intervene(event)


# --------------------------------------------------------------------------------------
# With features derived from touchpoints (the reference state, as the store does it)
# --------------------------------------------------------------------------------------


def test_the_third_complaint_call_in_30_days_raises_service_recovery() -> None:
    calls = [call_started("complaint", at(days=-d)) for d in (20, 5, 0)]
    state = apply_all(calls)  # the worker reads features after applying the call
    found = interventions_for(calls[-1], features_of(state), NOW)
    assert only(found, "service_recovery").reasons == ["complaints_30d:3"]
    early = apply_all(calls[:2])
    assert "service_recovery" not in kinds(interventions_for(calls[1], features_of(early), NOW))


def test_a_big_spender_browsing_after_100_quiet_days_raises_win_back() -> None:
    back = click(0.0)
    state = apply_all([purchase(700.0, at(days=-100)), back])
    found = interventions_for(back, features_of(state), NOW)
    assert only(found, "win_back").reasons == ["returned_after_days:100"]
    assert only(found, "win_back").context.recent_touchpoints == [
        "2026-11-23 09:00 web_click",
        "2026-08-15 09:00 purchase",
    ]


def test_win_back_with_a_sub_millisecond_event_time_ignores_the_event_itself() -> None:
    """The store keeps ts to the millisecond: the event's own entry must not count as the
    touchpoint before it."""
    from datetime import UTC, datetime, timedelta

    from agents.interventions import interventions_for
    from feature_store import touchpoint_fact
    from feature_store.features import build_features
    from feature_store.reference import CustomerState
    from schemas import Purchase, WebClick

    now = datetime(2026, 11, 23, 12, 0, 0, 123456, tzinfo=UTC)
    old = now - timedelta(days=120)
    state = CustomerState()
    now_ms = int(now.timestamp() * 1000)
    for i in range(3):
        bought = Purchase(event_id=f"b{i}", customer_id="c", ts=old + timedelta(minutes=i),
                          order_id="o", amount=300.0, currency="EUR")  # fmt: skip
        state.apply(touchpoint_fact(bought), now_ms)
    click = WebClick(event_id="back", customer_id="c", ts=now, page="/")
    state.apply(touchpoint_fact(click), now_ms)
    features = build_features(state.profile, state.windows, list(state.recent), now_ms)
    kinds = [i.kind for i in interventions_for(click, features, now)]
    assert kinds == ["win_back"]


def test_the_context_names_the_customers_timezone_where_known() -> None:
    told = only(alerts(call(reason="cancel"), customer(timezone="Asia/Kolkata")), "save_desk")
    assert told.context.timezone == "Asia/Kolkata"  # the screen shows their time now
    untold = only(alerts(call(reason="cancel"), customer()), "save_desk")
    assert untold.context.timezone is None


def test_no_one_is_asked_to_call_a_customer_who_withdrew_call_consent() -> None:
    """A risk crossing brought by consent withdrawn for all raised a retention call to
    the very customer who had just said not to be contacted."""
    withdrawn = customer(consent={"call": False}, value=600.0, segment="growth")
    consent = Consent(event_id="all-off", customer_id=CUSTOMER, ts=T0, channel="all", granted=False)
    assert interventions_for(consent, withdrawn, NOW, risk=0.9, risk_crossed=True) == []
    assert alerts(web(page="/account/cancel"), withdrawn) == []  # no save-desk call back
    assert alerts(web(), lapsed(120, value=600.0, consent={"call": False})) == []  # no win-back
    # on the line already: the agent may act, and a public reply needs no call
    assert kinds(alerts(call("cancel"), withdrawn)) == ["save_desk", "vip_attention"]
    assert kinds(alerts(social(-0.9, 50), withdrawn)) == ["service_recovery"]


def test_where_calls_are_opt_in_a_call_back_needs_call_consent_granted() -> None:
    leaving = web(page="/account/cancel")
    unknown = customer(consent={}, value=600.0, segment="growth")
    assert kinds(alerts(leaving, unknown)) == ["save_desk"]  # assumed: opt-out
    assert interventions_for(leaving, unknown, NOW, call_needs_grant=True) == []
    granted = customer(consent={"call": True}, value=600.0, segment="growth")
    assert kinds(interventions_for(leaving, granted, NOW, call_needs_grant=True)) == ["save_desk"]
    # on the line: the agent may act without it
    on_the_line = interventions_for(call("cancel"), unknown, NOW, call_needs_grant=True)
    assert kinds(on_the_line) == ["save_desk", "vip_attention"]


def test_the_end_of_an_inbound_call_is_not_being_on_the_line() -> None:
    ended = Call(event_id="end-1", customer_id=CUSTOMER, ts=T0, status="ended",
                 direction="inbound", reason="support")  # fmt: skip
    withdrawn = customer(consent={"call": False})
    assert interventions_for(ended, withdrawn, NOW, risk=0.9, risk_crossed=True) == []


# --------------------------------------------------------------------------------------
# Consent to calls withdrawn after a call-back was raised
# --------------------------------------------------------------------------------------


def withdrawal(channel: str = "call", granted: bool = False, event_id: str = "off-1") -> Consent:
    return Consent(event_id=event_id, customer_id=CUSTOMER, ts=T0, channel=channel,  # type: ignore[arg-type]
                   granted=granted)  # fmt: skip


def raised(**ago: timedelta) -> CustomerFeatures:
    """An ordinary customer (their consent to calls now withdrawn) whose last alerts of
    some kinds were raised ``ago``."""
    last = {kind: NOW - before for kind, before in ago.items()}
    return customer(consent={"call": False}, contact=ContactHistory(last_intervention=last))


@pytest.mark.parametrize("kind", ["retention_call", "save_desk", "vip_attention", "win_back"])
@pytest.mark.parametrize("channel", ["call", "all"])
def test_a_withdrawal_after_a_call_back_tells_every_screen_not_to_call(
    kind: str, channel: str
) -> None:
    found = alerts(withdrawal(channel), raised(**{kind: 3 * HOUR}))
    alert = only(found, "do_not_call")
    assert len(found) == 1
    assert (alert.priority, alert.queue, alert.reasons) == (1, None, ["consent_withdrawn:call"])
    assert alert.suggested_action.startswith("Do not call them")
    assert alert.trigger_event_id == "off-1"


@pytest.mark.parametrize(
    ("event", "features"),
    [
        (withdrawal(), customer(consent={"call": False})),  # no alert was raised
        (withdrawal(), raised(retention_call=DAY)),  # the call-back was a day ago
        (withdrawal(), raised(service_recovery=HOUR)),  # answered where they spoke up
        (withdrawal("email"), raised(retention_call=HOUR)),  # not calls
        (withdrawal(granted=True), raised(retention_call=HOUR)),  # a grant
        # stopped already, and no call-back raised since
        (withdrawal(), raised(retention_call=3 * HOUR, do_not_call=HOUR)),
        # stopped in the batch that raised it: one time for both
        (withdrawal(), raised(save_desk=HOUR, do_not_call=HOUR)),
        # read late: a newer grant is in force (the call-back came after it)
        (withdrawal(), msgspec.structs.replace(raised(save_desk=HOUR), consent={"call": True})),
    ],
)
def test_no_word_not_to_call_when_no_call_back_is_open(
    event: Consent, features: CustomerFeatures
) -> None:
    assert alerts(event, features) == []


def test_a_call_back_raised_after_the_last_do_not_call_is_stopped_again() -> None:
    """Consent granted again, a new call-back, withdrawn again within the day."""
    features = raised(retention_call=HOUR, do_not_call=3 * HOUR)
    assert kinds(alerts(withdrawal(event_id="off-2"), features)) == ["do_not_call"]


def test_the_word_not_to_call_is_never_too_late() -> None:
    """A withdrawal read late (after an outage) still stops the call."""
    late = alerts(withdrawal(), raised(retention_call=HOUR), now=T0 + 5 * HOUR)
    assert kinds(late) == ["do_not_call"]
    assert not too_late(late[0], InterventionRules())
