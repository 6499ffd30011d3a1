"""Properties of the alerts a touchpoint raises for the contact centre
(``interventions_for``, agents/interventions.py), on any touchpoint and customer: a
consent withdrawal never welcomes a lapsed customer back, the word not to call is given
exactly when a call-back may still be open, cool-downs keep a screen from being
flooded, and nobody is asked to call a customer who said no to calls."""

from __future__ import annotations

from datetime import timedelta

import msgspec
from hypothesis import given, note, settings
from hypothesis import strategies as st

from agents.alert_actions import (
    CALL_BACKS,
    HELD_OUT_ACTIONS,
    NO_CALL_OFFER_ACTIONS,
    CallsCapped,
    call_back_open,
)
from agents.interventions import InterventionRules, interventions_for, on_the_line
from feature_store import ContactHistory, CustomerFeatures, RecentTouchpoint
from schemas import Call, Consent, Email, Intervention, Purchase, SocialMention, Survey, WebClick
from schemas.touchpoints import TouchpointEvent
from tests.unit.decision_strategies import ALERT_KINDS, customer_features
from tests.unit.factories import T0

QUICK = settings(max_examples=60, deadline=None)
RULES = InterventionRules()

_common = st.fixed_dictionaries(
    {
        "event_id": st.sampled_from(["e1", "e2", "r0"]),
        "customer_id": st.just("c1"),
        "ts": st.integers(0, 7200).map(lambda s: T0 - timedelta(seconds=s)),
    }
)


def touchpoint(
    kind: type[TouchpointEvent], **fields: st.SearchStrategy[object]
) -> st.SearchStrategy[TouchpointEvent]:
    """Touchpoints of ``kind`` by customer c1 within the two hours before ``T0``."""
    return st.builds(lambda common, **kw: kind(**common, **kw), _common, **fields)


consents = touchpoint(
    Consent, channel=st.sampled_from(["call", "all", "email", "web"]), granted=st.booleans()
)
call_withdrawals = touchpoint(
    Consent, channel=st.sampled_from(["call", "all"]), granted=st.just(False)
)
touchpoints = st.one_of(
    touchpoint(WebClick, page=st.sampled_from(["/", "/offers", "/account/cancel"])),
    touchpoint(
        Call,
        status=st.sampled_from(["started", "ended"]),
        direction=st.sampled_from(["inbound", "outbound"]),
        reason=st.sampled_from(["sales", "support", "complaint", "cancel"]),
        queue=st.none() | st.sampled_from(["", "billing"]),
    ),
    touchpoint(Email, action=st.sampled_from(["opened", "clicked", "unsubscribed"])),
    touchpoint(
        SocialMention,
        platform=st.just("x"),
        sentiment=st.floats(-1, 1),
        reach=st.none() | st.integers(0, 10**6),
    ),
    touchpoint(
        Purchase, order_id=st.just("o1"), amount=st.floats(0, 1000), currency=st.just("EUR")
    ),
    touchpoint(Survey, score=st.just(3.0), scale=st.just("csat5")),
    consents,
)
# the touchpoints that raise alerts of their own: a call coming in, a visit to a
# cancellation page, a strongly negative mention
alerting = st.one_of(
    touchpoint(
        Call,
        status=st.just("started"),
        direction=st.just("inbound"),
        reason=st.sampled_from(["sales", "complaint", "cancel"]),
    ),
    touchpoint(WebClick, page=st.just("/account/cancel")),
    touchpoint(
        SocialMention,
        platform=st.just("x"),
        sentiment=st.floats(-1, -0.5),
        reach=st.none() | st.integers(0, 10**6),
    ),
)


@st.composite
def either(
    draw: st.DrawFn,
    first: st.SearchStrategy[TouchpointEvent],
    second: st.SearchStrategy[TouchpointEvent],
) -> TouchpointEvent:
    """One of ``first`` half the time, else one of ``second``."""
    return draw(first if draw(st.booleans()) else second)


# alerts raised for the customer earlier in the batch, not recorded yet
raised_lately = st.lists(
    st.builds(
        Intervention,
        intervention_id=st.sampled_from(["l1", "l2", "l3"]),
        customer_id=st.just("c1"),
        ts=st.integers(0, 3 * 86400).map(lambda s: T0 - timedelta(seconds=s)),
        kind=st.sampled_from(ALERT_KINDS),
        priority=st.sampled_from([1, 2, 3]),
        trigger_event_id=st.none(),
        reasons=st.just([]),
        suggested_action=st.just(""),
    ),
    max_size=3,
)


said_to_calls = st.sampled_from([True, False, None])  # given, withdrawn, never said


@st.composite
def customers(
    draw: st.DrawFn, said: st.SearchStrategy[bool | None] = said_to_calls
) -> CustomerFeatures:
    """A customer with alerts raised lately and recent touchpoints, whose consent to
    calls is given, withdrawn or never said (``said``)."""
    features = draw(customer_features(T0, alerts=True))
    calls = draw(said)
    consent = {k: v for k, v in features.consent.items() if k != "call"}
    consent |= {} if calls is None else {"call": calls}
    return msgspec.structs.replace(features, consent=consent)


@st.composite
def lapsed_customers(draw: st.DrawFn) -> CustomerFeatures:
    """A customer, often a valuable one, whose touchpoint before the last few (a consent,
    an email, a survey, a visit, minutes ago) was weeks or months back, with no alert
    raised since: maybe a return. Their consent to calls holds most often (a withdrawal
    read late, after a newer grant, leaves it so)."""
    features = draw(customers(st.sampled_from([True, True, None, False])))
    back = [
        RecentTouchpoint(T0 - timedelta(minutes=draw(st.integers(0, 90))), kind, f"n{i}")
        for i, kind in enumerate(
            draw(st.lists(st.sampled_from(["consent", "email", "survey", "web_click"]), max_size=2))
        )
    ]
    back.sort(key=lambda r: r.ts, reverse=True)
    before = RecentTouchpoint(T0 - timedelta(days=draw(st.integers(60, 400))), "purchase", "old")
    value = draw(st.sampled_from([features.value, 500.0, 2000.0]))
    return msgspec.structs.replace(
        features, recent=[*back, before], value=value, contact=ContactHistory()
    )


def notices_a_return(event: TouchpointEvent) -> bool:
    """docs/decisions.md, Interventions: a win-back is noticed at a visit, an inbound call, a
    purchase or a negative mention; an email, a survey, a consent, an outbound call or
    a kind mention is only part of the return."""
    return (
        isinstance(event, WebClick | Purchase)
        or (isinstance(event, Call) and event.direction == "inbound" and event.status == "started")
        or (isinstance(event, SocialMention) and event.sentiment < 0)
    )


@QUICK
@given(
    event=either(call_withdrawals, touchpoints),
    features=lapsed_customers(),
    calls_opt_in=st.booleans(),
)
def test_only_a_touchpoint_that_notices_a_return_welcomes_a_lapsed_customer_back(
    event: TouchpointEvent, features: CustomerFeatures, calls_opt_in: bool
) -> None:
    """A consent given or withdrawn (even one read late, after a newer grant), an email
    or a survey never raises a win-back: it would use up the customer's one win-back
    for this return, and the visit or purchase that follows would raise none."""
    alerts = interventions_for(event, features, T0, call_needs_grant=calls_opt_in)
    note(repr(alerts))
    if any(a.kind == "win_back" for a in alerts):
        assert notices_a_return(event)


@QUICK
@given(event=either(call_withdrawals, touchpoints), features=customers(), raised=raised_lately)
def test_the_word_not_to_call_is_given_exactly_while_a_call_back_may_be_open(
    event: TouchpointEvent, features: CustomerFeatures, raised: list[Intervention]
) -> None:
    """A withdrawal of consent to calls that is in force raises a ``do_not_call`` for
    every screen exactly when an alert of the last day may have left a call to make,
    recorded or raised earlier in the batch; nothing else raises one."""
    alerts = interventions_for(event, features, T0, raised_lately=raised)
    withdrawn = (
        isinstance(event, Consent)
        and event.channel in ("call", "all")
        and not event.granted
        and not features.consents_to("call")
    )
    expected = withdrawn and call_back_open(features, T0, raised)
    assert ("do_not_call" in [a.kind for a in alerts]) == expected


@settings(max_examples=150, deadline=None)  # cheap, and many kinds of alert to cover
@given(
    event=either(alerting, touchpoints),
    features=customers() | lapsed_customers(),
    risk=st.floats(0, 1),
    crossed=st.booleans(),
    held_out=st.booleans(),
    calls_opt_in=st.booleans(),
    capped=st.sampled_from([None, CallsCapped("suppressed:fatigue:call:week", False)]),
    risk_high=st.booleans(),
)
def test_alerts_keep_cool_downs_and_call_consent(
    event: TouchpointEvent,
    features: CustomerFeatures,
    risk: float,
    crossed: bool,
    held_out: bool,
    calls_opt_in: bool,
    capped: CallsCapped | None,
    risk_high: bool,
) -> None:
    """At most one alert of each kind, about this touchpoint; none within the cool-down
    of the last of its kind unless more urgent, or unless that last one said not to call
    (the call caps were reached) and the customer may be called now (within the caps, or
    on the line); for a customer not on the line who said
    no to calls (or never said yes where calls are opt-in) only a reply where they spoke
    up or the word not to call; and a retention call or a win-back suggests no offer to the hold-out
    group or to a customer who withdrew consent to calls."""
    alerts = interventions_for(event, features, T0, RULES, risk, crossed, held_out, calls_opt_in,
                               calls_capped=capped, risk_high=risk_high)  # fmt: skip
    note(repr(alerts))
    kinds = [a.kind for a in alerts]
    assert len(kinds) == len(set(kinds))
    callable_now = capped is None or on_the_line(event)
    for alert in alerts:
        assert alert.trigger_event_id == event.event_id and alert.customer_id == event.customer_id
        assert alert.ts == T0 and alert.trigger_ts == event.ts and alert.priority in (1, 2, 3)
        last = features.contact.last_intervention.get(alert.kind)
        cool_down = RULES.cooldown_s.get(alert.kind)
        if last is not None and cool_down is not None and T0 - last < timedelta(seconds=cool_down):
            assert alert.priority < features.contact.last_intervention_priority.get(
                alert.kind, 1
            ) or (callable_now and alert.kind in features.contact.last_intervention_capped)
        if not on_the_line(event) and not features.consents_to("call", calls_opt_in):
            assert alert.kind in ("service_recovery", "do_not_call")
        said = alert.suggested_action
        if capped is not None and not on_the_line(event) and alert.kind in CALL_BACKS:
            # past the call caps: not to call, then what to do should they call in
            assert alert.reasons[-1] == capped.alert_reason and said.startswith("Do not call")
            said = said.split("Should they call in: ", 1)[1]
            said = said[:1].upper() + said[1:]
        pitches = alert.kind in ("retention_call", "win_back")  # suggest an offer
        if pitches and held_out:
            assert said == HELD_OUT_ACTIONS[alert.kind]
        elif pitches and not features.consents_to("call"):
            assert said == NO_CALL_OFFER_ACTIONS[alert.kind]
