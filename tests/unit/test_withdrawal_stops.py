"""A withdrawal of consent to calls applied out of band (dated too far ahead, or a
placeholder time) raises the do-not-call that stops an open call-back, and nothing else
(agents/withdrawal_stops.py, wired in TouchpointHandler and TouchpointDecisions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agents.alert_ids import intervention_id_for
from agents.control_group import ControlGroup
from agents.interventions import InterventionRules
from agents.letters import SourceRecord
from agents.withdrawal_stops import call_stop, do_not_call_for
from feature_store import ApplyStatus, CustomerFeatures
from feature_store.facts import Fact, ts_ms
from feature_store.features import ContactHistory
from feature_store.withdrawals import withdrawal_fact
from schemas import Consent, encode_touchpoint
from schemas.touchpoints import Channel
from tests.unit.test_touchpoint_handler import KNOWN, NOW, RecordingStore, handler

ZERO = datetime(1, 1, 1, tzinfo=UTC)
LATEST = NOW + timedelta(minutes=15)  # the worker's clock plus the skew allowed
# withdrew consent to calls an hour after a save-desk call-back was raised for them
CALL_BACK_OPEN = CustomerFeatures(
    events=KNOWN.events,
    value=KNOWN.value,
    segment=KNOWN.segment,
    consent={"call": False},
    contact=ContactHistory(last_intervention={"save_desk": NOW - timedelta(hours=1)}),
)


def withdrawal(
    event_id: str, ts: datetime, channel: Channel = "call", granted: bool = False
) -> Consent:
    return Consent(event_id=event_id, customer_id="cust-1", ts=ts, channel=channel,
                   granted=granted)  # fmt: skip


def applied(event: Consent, stamp: datetime) -> list[Fact]:
    """What withdrawal_now / withdrawal_received make of ``event``, stamped ``stamp``."""
    fact = withdrawal_fact(event, ts_ms(stamp))
    return [] if fact is None else [fact]


def records(*events: Consent, received_ms: int | None = None) -> list[SourceRecord]:
    return [
        SourceRecord(
            "touchpoints", 0, offset, b"cust-1", encode_touchpoint(e), produced_ms=received_ms
        )
        for offset, e in enumerate(events)
    ]


def test_a_stop_is_dated_as_its_withdrawal_was_stamped() -> None:
    ahead = withdrawal("w", NOW + timedelta(hours=1))
    stop = call_stop(ahead, applied(ahead, LATEST))
    assert stop is not None and stop.ts == LATEST and stop.event_id == "w"
    everything = withdrawal("a", ZERO, channel="all")
    assert call_stop(everything, applied(everything, NOW)) is not None


def test_only_a_withdrawal_of_calls_applied_is_a_stop() -> None:
    for event in (withdrawal("e", ZERO, channel="email"), withdrawal("g", ZERO, granted=True)):
        assert call_stop(event, applied(event, NOW)) is None
    assert call_stop(withdrawal("w", ZERO), []) is None  # nothing of it was applied


def test_a_stop_raises_a_do_not_call_alone_under_its_touchpoints_id() -> None:
    stop = withdrawal("w", LATEST)
    (alert,) = do_not_call_for(stop, CALL_BACK_OPEN, NOW, InterventionRules(), [], "p")
    assert alert.kind == "do_not_call" and alert.reasons == ["consent_withdrawn:call"]
    assert alert.intervention_id == intervention_id_for("do_not_call", "w", "p")
    assert alert.trigger_ts == LATEST


def test_a_stop_raises_nothing_with_no_call_back_open_or_a_grant_in_force() -> None:
    stop = withdrawal("w", LATEST)
    raised = {"save_desk": NOW - timedelta(hours=1), "do_not_call": NOW - timedelta(minutes=5)}
    stopped = ContactHistory(last_intervention=raised)
    for features in (
        CustomerFeatures(consent={"call": False}),  # no call-back raised
        CustomerFeatures(consent={"call": False}, contact=stopped),  # stopped already
        CustomerFeatures(consent={"call": True}, contact=CALL_BACK_OPEN.contact),  # granted
        None,  # nothing known of them
    ):
        assert do_not_call_for(stop, features, NOW, InterventionRules(), [], "p") == []


async def test_a_call_withdrawal_dated_ahead_raises_a_do_not_call_and_stays_a_letter() -> None:
    store = RecordingStore(features={"cust-1": CALL_BACK_OPEN})
    result = await handler(store).handle(records(withdrawal("ahead", NOW + timedelta(hours=1))))
    assert result.results == [("consent", "invalid")]
    assert [f.record.offset for f in result.dead_letters] == [0]  # lettered once
    (alert,) = result.interventions
    assert alert.kind == "do_not_call" and alert.trigger_event_id == "ahead"
    assert alert.intervention_id == intervention_id_for("do_not_call", "ahead", "p-cust-1")
    assert alert.trigger_ts == LATEST
    assert result.decisions == [] and result.risk_facts == [] and result.risk_examples == []
    assert store.apply_calls == [] and store.reads == [["cust-1"]]


async def test_a_call_withdrawal_dated_a_placeholder_time_raises_a_do_not_call() -> None:
    received = NOW - timedelta(seconds=2)
    store = RecordingStore(features={"cust-1": CALL_BACK_OPEN},
                           statuses={"zero": ApplyStatus.EXPIRED})  # fmt: skip
    batch = records(withdrawal("zero", ZERO), received_ms=ts_ms(received))
    result = await handler(store).handle(batch)
    assert result.results == [("consent", "expired")] and result.dead_letters == []
    (alert,) = result.interventions
    assert alert.kind == "do_not_call" and alert.trigger_event_id == "zero"
    assert alert.trigger_ts == received  # not the year 1: when Moments received it
    assert result.decisions == [] and result.risk_facts == [] and result.risk_examples == []
    assert result.touchpoints_of == {"cust-1": [(batch[0], 0)]}  # lettered if not recorded


async def test_copies_of_a_withdrawal_dated_ahead_raise_one_do_not_call() -> None:
    store = RecordingStore(features={"cust-1": CALL_BACK_OPEN})
    ahead = withdrawal("ahead", NOW + timedelta(hours=1))
    result = await handler(store).handle(records(ahead, ahead))
    assert [i.kind for i in result.interventions] == ["do_not_call"]
    assert len(result.dead_letters) == 2


async def test_a_withdrawal_of_email_dated_ahead_is_decided_on_for_nothing() -> None:
    store = RecordingStore(features={"cust-1": CALL_BACK_OPEN})
    result = await handler(store).handle(
        records(withdrawal("ahead", NOW + timedelta(hours=1), channel="email"))
    )
    assert result.interventions == [] and store.reads == []


async def test_a_stops_do_not_call_is_held_out_and_an_erased_customers_is_not_raised() -> None:
    store = RecordingStore(features={"cust-1": CALL_BACK_OPEN})
    ahead = records(withdrawal("ahead", NOW + timedelta(hours=1)))
    held = await handler(store, holdout=ControlGroup("held", 100.0)).handle(ahead)
    assert held.interventions == [] and [i.kind for i in held.held_out] == ["do_not_call"]
    store.gone.add("cust-1")
    erased = await handler(store).handle(ahead)
    assert erased.interventions == [] and erased.held_out == []


async def test_an_undated_call_withdrawal_of_a_customer_not_read_is_sent_again_later() -> None:
    """As a touchpoint of a customer whose keys cannot be read is set aside (a letter to
    re-drive once mended): a stop of theirs raised nothing and was left for good."""
    store = RecordingStore(features={"cust-1": CALL_BACK_OPEN},
                           statuses={"zero": ApplyStatus.EXPIRED})  # fmt: skip
    store.unreadable["cust-1"] = "a key of another type"
    batch = records(withdrawal("zero", ZERO), received_ms=ts_ms(NOW - timedelta(seconds=2)))
    result = await handler(store).handle(batch)
    assert not result.interventions
    assert [letter.record.offset for letter in result.dead_letters] == [0], result.dead_letters
