"""A churn-risk crossing is noticed once: its band stays high until the risk falls. A
crossing whose retention call was raised past the call caps said not to call, and the call
was never asked for again. It is owed now: while the band stays high, the customer's next
touchpoint that may raise an alert, once they may be called, asks for it (reason
``retention_owed:calls_allowed_again``), once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import msgspec
import pytest

from agents.alert_actions import ACTIONS
from agents.interventions import interventions_for
from agents.returning_customers import RETENTION_OWED
from agents.risk_scorer import RiskScorer
from agents.risk_watch import RiskHolder
from feature_store import intervention_fact
from feature_store.facts import ts_ms
from feature_store.features import ContactHistory
from schemas import Call, Email, WebClick
from tests.unit.factories import apply_all, features_of
from tests.unit.test_call_back_caps import DAY, ONCE_A_DAY, WEEK
from tests.unit.test_call_back_caps_cool_down import NothingSpent
from tests.unit.test_intervention_terms import AT, ORDINARY, worker_policy
from tests.unit.test_touchpoint_handler import NOW, RecordingStore, handler, records

HOUR, MINUTE, SECOND = timedelta(hours=1), timedelta(minutes=1), timedelta(seconds=1)
CROSSED_CAPPED = ["risk_crossed:0.83", "fatigue:call:day"]  # a capped crossing's reasons


def crossed_said_not_to_call(ago: timedelta = 30 * HOUR, capped: bool = True) -> Any:
    """A customer whose risk crossed ``ago``, the retention call it raised saying not to
    call (``capped``), or asking for the call."""
    contact = ContactHistory(
        last_intervention={"retention_call": AT - ago},
        last_intervention_priority={"retention_call": 2},
        last_intervention_capped=("retention_call",) if capped else (),
    )
    return msgspec.structs.replace(ORDINARY, contact=contact, risk_band="high")


def browsing(ts: Any = AT) -> WebClick:
    return WebClick(event_id="w9", customer_id="c1", ts=ts, page="/offers")


def test_the_crossings_call_is_asked_for_once_the_caps_lift() -> None:
    features = crossed_said_not_to_call()
    [alert] = interventions_for(browsing(), features, AT, risk=0.8, risk_high=True)
    assert (alert.kind, alert.reasons, alert.queue) == (
        "retention_call", [RETENTION_OWED], "retention",
    )  # fmt: skip
    assert alert.suggested_action == ACTIONS["retention_call"]


def test_within_the_cool_down_too() -> None:
    """The crossing's card held back no call: its cool-down does not hold this one."""
    features = crossed_said_not_to_call(ago=HOUR)
    [alert] = interventions_for(browsing(), features, AT, risk=0.8, risk_high=True)
    assert alert.reasons == [RETENTION_OWED]


@pytest.mark.parametrize(
    ("features", "capped", "high"),
    [
        (crossed_said_not_to_call(), DAY, True),  # the caps hold still
        (crossed_said_not_to_call(), WEEK, True),
        (crossed_said_not_to_call(capped=False), None, True),  # it asked for the call
        (crossed_said_not_to_call(), None, False),  # the risk fell below the band since
    ],
    ids=["day-cap", "week-cap", "asked-for-the-call", "risk-fell"],
)
def test_no_call_is_owed_otherwise(features: Any, capped: Any, high: bool) -> None:
    alerts = interventions_for(browsing(), features, AT, risk=0.8, risk_high=high,
                               calls_capped=capped)  # fmt: skip
    assert alerts == []


def test_a_touchpoint_that_raises_no_alert_asks_for_none() -> None:
    opened = Email(event_id="e1", customer_id="c1", ts=AT, action="opened")
    assert interventions_for(opened, crossed_said_not_to_call(), AT, risk_high=True) == []


def test_on_the_line_it_is_asked_of_the_agent_caps_or_not() -> None:
    call = Call(event_id="k9", customer_id="c1", ts=AT, status="started", direction="inbound",
                reason="billing", queue="billing", agent_id="agent-7")  # fmt: skip
    alerts = interventions_for(call, crossed_said_not_to_call(), AT, risk=0.8, risk_high=True,
                               calls_capped=WEEK)  # fmt: skip
    [alert] = [a for a in alerts if a.kind == "retention_call"]
    assert (alert.reasons, alert.queue, alert.agent_id) == ([RETENTION_OWED], "billing", "agent-7")


def test_the_call_asked_for_again_is_not_owed_again() -> None:
    said = crossed_said_not_to_call()
    [alert] = interventions_for(browsing(), said, AT, risk=0.8, risk_high=True)
    history = features_of(apply_all([
        intervention_fact("r-capped", "c1", "retention_call", AT - 30 * HOUR, priority=2,
                          reasons=CROSSED_CAPPED),
        intervention_fact(alert.intervention_id, "c1", "retention_call", alert.ts, priority=2,
                          reasons=alert.reasons),
    ])).contact  # fmt: skip
    assert history.last_intervention_capped == ()
    later = msgspec.structs.replace(said, contact=history)
    assert interventions_for(browsing(AT + HOUR), later, AT + HOUR, risk_high=True) == []


@pytest.mark.parametrize(("risk", "owed"), [(0.99, True), (0.2, False)])
async def test_the_worker_asks_for_it_while_the_customers_band_stays_high(
    risk: float, owed: bool
) -> None:
    """The worker scores the touchpoint, and passes the band it stores (0.2: it falls)."""
    store = RecordingStore(features={"cust-1": crossed_said_not_to_call()})
    store.budgets = NothingSpent()  # type: ignore[attr-defined]
    worker = handler(store, worker_policy(ONCE_A_DAY), risk=scoring(risk))
    click = WebClick(event_id="w9", customer_id="cust-1", ts=NOW, page="/offers")
    result = await worker.handle(records(click))
    calls = [a for a in result.interventions if a.kind == "retention_call"]
    assert [a.reasons for a in calls] == ([[RETENTION_OWED]] if owed else [])


def scoring(risk: float) -> RiskHolder:
    """A model that scores every customer ``risk`` (0.99 or 0.2)."""
    holder = RiskHolder()
    holder.model = RiskScorer(serving=True, reason="model", intercept={0.99: 4.6, 0.2: -1.4}[risk])
    return holder


async def test_a_touchpoint_read_late_goes_by_the_band_stored_since() -> None:
    """Older than the stored band (low, at NOW), it scores high but stores no band: no
    call is owed by it."""
    features = msgspec.structs.replace(
        crossed_said_not_to_call(), risk_band="low", risk_band_ms=ts_ms(NOW)
    )
    store = RecordingStore(features={"cust-1": features})
    store.budgets = NothingSpent()  # type: ignore[attr-defined]
    worker = handler(store, worker_policy(ONCE_A_DAY), risk=scoring(0.99))
    late = WebClick(event_id="w-late", customer_id="cust-1", ts=NOW - 5 * MINUTE, page="/offers")
    result = await worker.handle(records(late))
    assert [a for a in result.interventions if a.kind == "retention_call"] == []


async def test_a_batch_whose_newest_touchpoint_lowers_the_band_owes_no_call() -> None:
    """The call is asked for at the touchpoint the batch scores, the customer's newest:
    an earlier one of the batch does not ask by the band from before it."""
    store = RecordingStore(features={"cust-1": crossed_said_not_to_call()})
    store.budgets = NothingSpent()  # type: ignore[attr-defined]
    worker = handler(store, worker_policy(ONCE_A_DAY), risk=scoring(0.2))
    first = WebClick(event_id="w1", customer_id="cust-1", ts=NOW - 2 * SECOND, page="/offers")
    newest = WebClick(event_id="w2", customer_id="cust-1", ts=NOW, page="/offers")
    result = await worker.handle(records(first, newest))
    assert [a for a in result.interventions if a.kind == "retention_call"] == []
