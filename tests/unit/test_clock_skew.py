"""Times stamped by a clock running a little ahead (a source's, within
MOMENTS_MAX_FUTURE_SKEW_S, or another Moments process's) count at once in live reads and
in the store's ceilings: near midnight UTC they fall in tomorrow's buckets, which a read
at a correct clock left out (a second email past a daily cap of 1; a third complaint
raising no service-recovery call)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agents.contact_ceilings import ceilings_of
from agents.contact_policy import ContactPolicy
from agents.control_group import ControlGroup
from agents.interventions import interventions_for
from feature_store import offers_shown_fact, touchpoint_fact
from feature_store.facts import ts_ms
from feature_store.features import CustomerFeatures, build_features
from feature_store.reference import CustomerState
from schemas import Call, ContactRules, NextBestOffer, Offer, OfferCatalogue, OfferScore

REAL = datetime(2026, 12, 1, 23, 59, tzinfo=UTC)  # the right time
FAST = REAL + timedelta(minutes=2)  # 00:01 on a clock two minutes ahead
CATALOGUE = OfferCatalogue(
    version="v1",
    offers=[Offer(offer_id="tips", title="Tips", channels=["email"])],
    contact_policy=ContactRules(),  # one email a day, three a week
)
POLICY = ContactPolicy(ControlGroup("salt", 0.0))


def features(state: CustomerState, now: datetime, ahead: bool) -> CustomerFeatures:
    """As the store reads them at the clock's now (``ahead``: 15 minutes ahead), or as of
    a past moment."""
    return build_features(state.profile, state.windows, list(state.recent), ts_ms(now),
                          state.contacts, ahead_ms=900_000 if ahead else 0)  # fmt: skip


def email_shown(state: CustomerState, at: datetime, decision_id: str) -> int:
    """The store's status for an email decided at ``at`` (by that process's clock)."""
    decision = NextBestOffer(
        decision_id=decision_id, customer_id="c1", ts=at, channel="email",
        trigger_event_id=None, control=False, model_version="m", reasons=[],
        offers=[OfferScore(offer_id="tips", score=1.0, propensity=1.0)],
    )  # fmt: skip
    fact = offers_shown_fact(decision_id, "c1", "email", ["tips"], at,
                             ceilings_of(decision, CATALOGUE))  # fmt: skip
    return int(state.apply(fact, now_ms=ts_ms(REAL)))


def test_a_contact_stamped_tomorrow_by_a_fast_clock_counts_against_todays_cap() -> None:
    state = CustomerState()
    assert email_shown(state, FAST, "d-fast") == 1  # applied
    later = REAL + timedelta(seconds=30)
    live = features(state, later, ahead=True)
    assert live.contact.shown_today == {"email": 1} and live.contact.shown_7d == {"email": 1}
    verdict = POLICY.screen("c1", "email", live, CATALOGUE.offers, later,
                            rules=CATALOGUE.contact_policy)  # fmt: skip
    assert verdict.allowed == []
    as_of = features(state, later, ahead=False)  # as of a moment: nothing after it
    assert as_of.contact.shown_today == {}
    # two processes deciding at once: the store refuses the second too
    assert email_shown(state, later, "d-right") == 5  # over a ceiling


def test_a_complaint_from_a_source_running_ahead_raises_the_service_recovery_call() -> None:
    calls = [
        Call(event_id=f"c{i}", customer_id="c1", ts=ts, status="started",
             direction="inbound", reason="complaint")
        for i, ts in enumerate((REAL - timedelta(days=10), REAL - timedelta(days=3),
                                REAL + timedelta(minutes=3)))
    ]  # fmt: skip
    state = CustomerState()
    for call in calls:
        state.apply(touchpoint_fact(call), now_ms=ts_ms(REAL))
    live = features(state, REAL, ahead=True)
    assert live.complaints_30d == 3
    assert [a.kind for a in interventions_for(calls[-1], live, REAL)] == ["service_recovery"]


def test_an_event_dated_further_ahead_than_events_are_taken_does_not_count_yet() -> None:
    """A skew allowed up to a year: an event dated 200 days ahead counted in every window
    (calls in the last hour, complaints in 30 days) from the day it came."""
    call = Call(event_id="far", customer_id="c1", ts=REAL + timedelta(days=200),
                status="started", direction="inbound", reason="complaint")  # fmt: skip
    state = CustomerState()
    state.apply(touchpoint_fact(call), now_ms=ts_ms(REAL))
    live = features(state, REAL, ahead=True)
    assert live.complaints_30d == 0 and live.activity["1h"] == {}
