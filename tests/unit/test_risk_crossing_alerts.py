"""The retention call a churn-risk crossing raises: its id, and the touchpoint raising it.

Driven through the real :class:`~agents.touchpoint_handler.TouchpointHandler` with the
test double store of :mod:`tests.unit.test_touchpoint_handler` (not Redis: each test says
what the store answers). The customer's features put their risk far above the threshold
of 0.7 (the baseline model's score), so that their first scored touchpoint crosses it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec

from agents.alert_ids import crossing_id_for, intervention_id_for
from agents.interventions import RISK_CROSSED
from agents.risk_watch import RiskHolder
from agents.touchpoint_handler import TouchpointHandler
from feature_store import CustomerFeatures
from feature_store.facts import ts_ms
from schemas import Call, Intervention, TouchpointEvent
from tests.unit.test_touchpoint_handler import T0, RecordingStore, click, handler, records

SUBJECT = "p-cust-1"  # how the test store names cust-1's keys (its pseudonym)
AT_RISK = CustomerFeatures(
    events=9, purchases=1, spend=50.0, value=50.0, segment="dangling", experience=0.05,
    complaints_30d=3, call_reasons={"cancel": 1}, email_subscribed=False,
    first_seen=T0 - timedelta(days=200),
)  # fmt: skip
NO_CALLS = msgspec.structs.replace(AT_RISK, consent={"call": False})


def risk_handler(store: RecordingStore) -> TouchpointHandler:
    return handler(store, risk=RiskHolder(), risk_threshold=0.7)


async def alerts_of(features: CustomerFeatures, *events: TouchpointEvent) -> list[Intervention]:
    store = RecordingStore(features={"cust-1": features})
    return (await risk_handler(store).handle(records(*events))).interventions


def crossings(alerts: list[Intervention]) -> list[Intervention]:
    return [a for a in alerts if any(r.startswith(RISK_CROSSED) for r in a.reasons)]


def inbound(event_id: str, ts: datetime, queue: str = "billing") -> Call:
    return Call(event_id=event_id, customer_id="cust-1", ts=ts, status="started",
                direction="inbound", reason="billing", queue=queue,
                agent_id="agent-7")  # fmt: skip


# --------------------------------------------------------------------------------------
# One crossing, one id: its batch read again (a worker stopped after Kafka took its
# alerts, before the batch was confirmed and the band stored) ends at another touchpoint
# --------------------------------------------------------------------------------------


async def test_a_crossing_read_again_in_a_shorter_batch_keeps_its_alert_id() -> None:
    e1, e2 = click("e1", ts=T0 - timedelta(minutes=2)), click("e2", ts=T0 - timedelta(minutes=1))
    first = crossings(await alerts_of(AT_RISK, e1, e2))
    again = crossings(await alerts_of(AT_RISK, e1))
    assert [a.trigger_event_id for a in first + again] == ["e2", "e1"]
    assert {a.intervention_id for a in first + again} == {crossing_id_for(SUBJECT, AT_RISK)}


async def test_a_crossing_read_again_with_a_newer_touchpoint_keeps_its_alert_id() -> None:
    e1, e2 = click("e1", ts=T0 - timedelta(minutes=2)), click("e2", ts=T0 - timedelta(minutes=1))
    first = crossings(await alerts_of(AT_RISK, e1, e2))
    again = crossings(await alerts_of(AT_RISK, e1, e2, click("e3", ts=T0)))
    assert [a.trigger_event_id for a in first + again] == ["e2", "e3"]
    assert len({a.intervention_id for a in first + again}) == 1


async def test_crossings_the_band_stored_between_are_named_apart() -> None:
    """High, then low again (stored), then high: a second crossing, a second call."""
    stored_low = msgspec.structs.replace(
        AT_RISK, risk_band="low", risk_band_ms=ts_ms(T0 - timedelta(days=10))
    )
    # stored high at the first crossing, then low again three days ago
    low_again = msgspec.structs.replace(stored_low, risk_band_ms=ts_ms(T0 - timedelta(days=3)))
    first = crossings(await alerts_of(stored_low, click("e1", ts=T0 - timedelta(days=9))))
    second = crossings(await alerts_of(low_again, click("e9", ts=T0 - timedelta(minutes=1))))
    never_banded = crossings(await alerts_of(AT_RISK, click("e5", ts=T0 - timedelta(days=9))))
    ids = [a.intervention_id for a in first + second + never_banded]
    assert len(ids) == 3 and len(set(ids)) == 3, ids


async def test_a_crossing_told_on_an_at_risk_callers_alert_keeps_the_calls_id() -> None:
    at_risk = msgspec.structs.replace(AT_RISK, segment="at_risk")
    (alert,) = crossings(await alerts_of(at_risk, inbound("c1", T0 - timedelta(minutes=1))))
    assert alert.reasons[0] == "segment:at_risk"
    assert alert.intervention_id == intervention_id_for("retention_call", "c1", SUBJECT)


# --------------------------------------------------------------------------------------
# A crossing while the customer is on the line reaches the agent speaking to them
# --------------------------------------------------------------------------------------


async def test_a_crossing_is_raised_at_the_inbound_call_not_a_later_click() -> None:
    alerts = await alerts_of(
        msgspec.structs.replace(AT_RISK, consent={}),
        inbound("c1", T0 - timedelta(minutes=2)),
        click("w1", ts=T0 - timedelta(minutes=1)),
    )
    assert [(a.kind, a.trigger_event_id, a.queue, a.agent_id) for a in alerts] == [
        ("retention_call", "c1", "billing", "agent-7")
    ]
    assert [a.intervention_id for a in alerts] == [crossing_id_for(SUBJECT, AT_RISK)]


async def test_a_customer_who_said_not_to_call_gets_the_crossing_while_on_the_line() -> None:
    store = RecordingStore(features={"cust-1": NO_CALLS})
    result = await risk_handler(store).handle(
        records(inbound("c1", T0 - timedelta(minutes=2)), click("w1", ts=T0 - timedelta(minutes=1)))
    )
    assert [(a.kind, a.trigger_event_id) for a in result.interventions] == [
        ("retention_call", "c1")
    ]
    # scored as of the newest touchpoint: its fact stores the band
    assert [f.fact_id for f in result.risk_facts] == ["r:w1"]


async def test_a_late_call_record_read_last_still_raises_the_crossing() -> None:
    alerts = await alerts_of(
        NO_CALLS,
        click("w1", ts=T0 - timedelta(minutes=1)),
        inbound("c1", T0 - timedelta(minutes=2)),
    )
    assert [(a.kind, a.trigger_event_id, a.queue) for a in crossings(alerts)] == [
        ("retention_call", "c1", "billing")
    ]


async def test_a_call_long_over_does_not_raise_the_crossing() -> None:
    """An inbound call past the alerts' age (an hour): the customer has hung up, and
    the crossing is a call-back from the retention queue, raised at their newest
    touchpoint."""
    alerts = await alerts_of(
        msgspec.structs.replace(AT_RISK, consent={}),
        inbound("c1", T0 - timedelta(hours=2)),
        click("w1", ts=T0 - timedelta(minutes=1)),
    )
    assert [(a.trigger_event_id, a.queue, a.agent_id) for a in crossings(alerts)] == [
        ("w1", "retention", None)
    ]


def ended(event_id: str, ts: datetime) -> Call:
    return Call(event_id=event_id, customer_id="cust-1", ts=ts, status="ended",
                direction="inbound", reason="billing", queue="billing", agent_id="agent-7",
                duration_s=60)  # fmt: skip


def where(alerts: list[Intervention]) -> list[tuple[str, str | None, str | None]]:
    return [(a.trigger_event_id, a.queue, a.agent_id) for a in crossings(alerts)]


async def test_a_lone_call_long_over_raises_the_crossing_as_a_call_back() -> None:
    """Their newest touchpoint, but they hung up long ago: not on the line there either."""
    over = inbound("c1", T0 - timedelta(hours=2))
    assert where(await alerts_of(msgspec.structs.replace(AT_RISK, consent={}), over)) == [
        ("c1", "retention", None)
    ]
    assert crossings(await alerts_of(NO_CALLS, over)) == []


async def test_a_call_long_over_newer_than_a_click_is_no_call_for_who_said_not_to_call() -> None:
    old_click = click("w1", ts=T0 - timedelta(hours=3))
    assert (
        crossings(await alerts_of(NO_CALLS, old_click, inbound("c1", T0 - timedelta(hours=2))))
        == []
    )


async def test_a_call_the_batch_shows_ended_is_not_on_the_line() -> None:
    call, end = inbound("c1", T0 - timedelta(minutes=2)), ended("c1-end", T0 - timedelta(minutes=1))
    assert crossings(await alerts_of(NO_CALLS, call, end)) == []
    assert where(await alerts_of(msgspec.structs.replace(AT_RISK, consent={}), call, end)) == [
        ("c1", "retention", None)
    ]


async def test_a_call_ended_before_a_click_leaves_the_crossing_at_the_click() -> None:
    batch = (inbound("c1", T0 - timedelta(minutes=4)), ended("c1-end", T0 - timedelta(minutes=3)),
             click("w1", ts=T0 - timedelta(minutes=1)))  # fmt: skip
    assert crossings(await alerts_of(NO_CALLS, *batch)) == []
    assert where(await alerts_of(msgspec.structs.replace(AT_RISK, consent={}), *batch)) == [
        ("w1", "retention", None)
    ]


async def test_an_earlier_calls_end_does_not_end_the_call_after_it() -> None:
    batch = (ended("c0-end", T0 - timedelta(minutes=5)), inbound("c1", T0 - timedelta(minutes=2)))
    assert where(await alerts_of(NO_CALLS, *batch)) == [("c1", "billing", "agent-7")]


async def test_two_at_risk_calls_the_one_alert_kept_tells_of_the_crossing() -> None:
    """The crossing rides on the newer call's retention call; the older one is kept (of
    equals, the first), and tells of it: the band is stored high all the same."""
    at_risk = msgspec.structs.replace(AT_RISK, segment="at_risk", consent={})
    alerts = await alerts_of(at_risk, inbound("c0", T0 - timedelta(minutes=8)),
                             inbound("c1", T0 - timedelta(minutes=2)))  # fmt: skip
    assert [(a.trigger_event_id, a.reasons[0]) for a in alerts] == [("c0", "segment:at_risk")]
    assert crossings(alerts) == alerts
