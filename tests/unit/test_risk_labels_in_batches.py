"""Churn-risk labels when one customer's touchpoints arrive together: a churn signal
anywhere among them labels the pending snapshot, which is watched once per batch."""

from __future__ import annotations

from datetime import timedelta

import msgspec

from agents.batch_result import BatchResult
from agents.letters import SourceRecord
from agents.risk import ChurnRisk
from agents.risk_labels import DAY_MS, PendingSnapshot, label_for
from agents.risk_sweep import sweep_label
from agents.risk_watch import decode_snapshot, pending_snapshot, watch_risk
from feature_store import CustomerFeatures, PendingRisk
from feature_store.facts import ts_ms
from feature_store.features import RecentTouchpoint
from feature_store.records import ApplyStatus
from schemas import Call, Consent, Email, TouchpointEvent, WebClick, encode_touchpoint
from tests.unit.factories import T0
from tests.unit.test_touchpoint_handler import RecordingStore, handler

SNAPSHOT_AT = T0 - timedelta(days=3)
WAITING = CustomerFeatures(
    events=5, purchases=1, spend=50.0, value=50.0, segment="growth",
    risk_snapshot=pending_snapshot({"experience": 0.4}, ts_ms(SNAPSHOT_AT)), risk_band="low",
)  # fmt: skip


def click(event_id: str, customer: str = "cust-1", seconds: float = 0.0) -> WebClick:
    ts = T0 + timedelta(seconds=seconds)
    return WebClick(event_id=event_id, customer_id=customer, ts=ts, page="/offers")


def cancel_call(event_id: str, customer: str = "cust-1", seconds: float = 0.0) -> Call:
    return Call(event_id=event_id, customer_id=customer, ts=T0 + timedelta(seconds=seconds),
                status="started", direction="inbound", reason="cancel")  # fmt: skip


def batch(*events: TouchpointEvent) -> list[SourceRecord]:
    return [
        SourceRecord("touchpoints", 0, offset, e.customer_id.encode(), encode_touchpoint(e))
        for offset, e in enumerate(events)
    ]


async def handled(*events: TouchpointEvent) -> BatchResult:
    store = RecordingStore(features={"cust-1": WAITING, "cust-2": WAITING})
    return await handler(store).handle(batch(*events))


async def test_a_cancel_call_followed_by_a_click_in_one_batch_labels_the_snapshot_positive() -> (
    None
):
    result = await handled(cancel_call("cancel"), click("after", seconds=30))
    (example,) = result.risk_examples
    assert example.y is True and example.x == {"experience": 0.4}
    assert example.snapshot_ts == SNAPSHOT_AT
    # watched once: one example, one new snapshot, from the customer's newest touchpoint
    assert [f.fact_id for f in result.risk_facts] == ["r:after"]


async def test_every_kind_of_churn_signal_counts_wherever_it_is_in_the_batch() -> None:
    unsubscribed = Email(event_id="unsub", customer_id="cust-1", ts=T0, action="unsubscribed")
    withdrawn = Consent(event_id="all", customer_id="cust-1", ts=T0, channel="all",
                        granted=False)  # fmt: skip
    for signal in (unsubscribed, withdrawn):
        result = await handled(click("before", seconds=-5), signal, click("after", seconds=5))
        assert [e.y for e in result.risk_examples] == [True], signal


async def test_another_customers_churn_signal_labels_nothing() -> None:
    result = await handled(cancel_call("theirs", customer="cust-2"), click("mine"))
    (example,) = result.risk_examples
    assert example.y is True and example.example_id.startswith("risk:p-cust-2:")
    assert [f.fact_id for f in result.risk_facts] == ["r:theirs"]  # cust-1's still waits


async def test_ordinary_touchpoints_together_leave_the_snapshot_waiting() -> None:
    result = await handled(click("one"), click("two", seconds=5))
    assert result.risk_examples == []


def test_a_churn_signal_of_the_batch_counts_only_within_the_snapshots_horizon() -> None:
    pending = PendingSnapshot({}, ts_ms=0)
    assert label_for(pending, 10 * DAY_MS, 9 * DAY_MS, churned_ms=[9 * DAY_MS]) is True
    # before the snapshot, or after its horizon: not this snapshot's churn
    assert label_for(pending, 10 * DAY_MS, 9 * DAY_MS, churned_ms=[-DAY_MS]) is None
    assert label_for(pending, 31 * DAY_MS, 30 * DAY_MS, churned_ms=[31 * DAY_MS]) is False
    # within the horizon, though the touchpoint watched is past it
    assert label_for(pending, 31 * DAY_MS, 30 * DAY_MS, churned_ms=[29 * DAY_MS]) is True


async def test_a_touchpoint_and_the_sweep_give_one_snapshot_the_same_example_id() -> None:
    result = await handled(cancel_call("cancel"))
    (by_touchpoint,) = result.risk_examples
    assert WAITING.risk_snapshot is not None
    quiet = PendingRisk("p-cust-1", WAITING.risk_snapshot, last_seen_ms=ts_ms(SNAPSHOT_AT))
    by_clock = sweep_label(quiet, T0 + timedelta(days=60))
    assert by_clock is not None and by_clock.example_id == by_touchpoint.example_id


async def test_the_touchpoint_a_snapshot_was_taken_at_does_not_label_it_when_it_comes_again() -> (
    None
):
    """A churn signal that comes again (a producer's retry, a re-drive, a batch redone
    after a crash) found the snapshot taken at itself pending, whose features already
    hold it, and labelled it positive at once: a label leaked into its own example."""
    unsubscribed = Email(event_id="unsub", customer_id="cust-1", ts=T0, action="unsubscribed")
    first = await handled(unsubscribed)
    (example,) = first.risk_examples  # the snapshot from before is labelled...
    assert example.y is True and example.snapshot_ts == SNAPSHOT_AT
    (taken,) = first.risk_facts  # ...and a new one taken at the unsubscribe
    assert taken.fact_id == "r:unsub"
    (snapshot,) = [str(u[2]) for u in taken.updates if u[1] == "risk_snapshot"]
    again = msgspec.structs.replace(WAITING, risk_snapshot=snapshot)
    store = RecordingStore(features={"cust-1": again}, statuses={"unsub": ApplyStatus.DUPLICATE})
    replayed = await handler(store).handle(batch(unsubscribed))
    assert replayed.risk_examples == [] and replayed.risk_facts == []
    # another churn signal at the same moment labels it as usual
    cancel = await handler(store).handle(batch(cancel_call("cancel")))
    assert [e.y for e in cancel.risk_examples] == [True]


def test_a_snapshot_stored_before_it_named_its_touchpoint_is_still_read() -> None:
    from agents.risk_watch import decode_snapshot

    assert decode_snapshot('{"x":{"experience":0.4},"ts_ms":5}') == PendingSnapshot(
        {"experience": 0.4}, 5
    )


async def test_a_customer_erased_before_the_batch_is_sent_has_no_risk_example_sent() -> None:
    """Their labelled snapshot would reach the risk learner after the erasure (it was
    left in the batch when their decisions and alerts were left out)."""
    store = RecordingStore(features={"cust-1": WAITING, "cust-2": WAITING})
    h = handler(store)
    result = await h.handle(batch(cancel_call("a"), cancel_call("b", customer="cust-2")))
    assert len(result.risk_examples) == 2
    kept = next(
        e for e in result.risk_examples if result.example_customers[e.example_id] == "cust-1"
    )
    store.gone.add("cust-2")  # erased while the batch waited for Kafka, say
    await h.without_erased(result)
    assert result.risk_examples == [kept]


class HighRisk:
    def predict_one(self, x: object) -> float:
        return 0.9


def test_a_touchpoint_older_than_the_band_it_would_cross_raises_no_crossing() -> None:
    """A late call record (dated before the touchpoint the band was last seen at) found
    the risk high: its band loses to the newer one and is not stored, so a crossing
    raised then would be raised again at the next touchpoint."""
    from agents.risk_watch import watch_risk

    seen = msgspec.structs.replace(WAITING, risk_band="low", risk_band_ms=ts_ms(T0))
    late, newer = click("late", seconds=-60), click("newer", seconds=60)
    for event, crosses in ((late, False), (newer, True)):
        watch = watch_risk(event, seen, T0, HighRisk(), 0.7, subject="s")  # type: ignore[arg-type]
        assert watch.crossed is crosses, event.event_id


def test_a_cancellation_dated_just_before_a_fast_clocks_snapshot_labels_it() -> None:
    """A click from a phone 14 minutes fast was snapshotted; the customer then called to
    cancel, dated right, 9 minutes before it. The call labelled nothing, and the next
    touchpoint a month on labelled the snapshot "stayed"."""
    clicked = T0 + timedelta(minutes=14)  # as the phone dated it
    snapshot = pending_snapshot({"experience": 0.3}, ts_ms(clicked), "click-1")
    cancel = cancel_call("call-1", seconds=5 * 60)
    seen = CustomerFeatures(risk_snapshot=snapshot, last_seen=clicked, recent=[
        RecentTouchpoint(clicked, "web_click", "click-1"),
        RecentTouchpoint(cancel.ts, "call", "call-1"),
    ])  # fmt: skip
    watch = watch_risk(cancel, seen, cancel.ts, ChurnRisk(), subject="s")
    assert watch.example is not None and watch.example.y is True
    long_before = cancel_call("call-0", seconds=-30 * 60)  # half an hour before: not its
    assert watch_risk(long_before, seen, cancel.ts, ChurnRisk(), subject="s").example is None


def test_a_lapse_a_survey_answer_ended_is_labelled_by_the_next_watched_touchpoint() -> None:
    """Quiet 50 days after the snapshot, back with a survey answer (not watched), then a
    click a day later: the click found the survey just before it, and labelled the
    snapshot "stayed"."""
    snapped = SNAPSHOT_AT - timedelta(days=51)
    snapshot = pending_snapshot({"experience": 0.4}, ts_ms(snapped), "click-0")
    answered, clicked = SNAPSHOT_AT - timedelta(days=1), SNAPSHOT_AT
    later = WebClick(event_id="click-1", customer_id="cust-1", ts=clicked, page="/")
    seen = CustomerFeatures(risk_snapshot=snapshot, last_seen=clicked, recent=[
        RecentTouchpoint(clicked, "web_click", "click-1"),
        RecentTouchpoint(answered, "survey", "survey-1"),
        RecentTouchpoint(snapped, "web_click", "click-0"),
    ])  # fmt: skip
    watch = watch_risk(later, seen, clicked, ChurnRisk(), subject="s")
    assert watch.example is not None and watch.example.y is True
    recent = [*seen.recent[:2]]  # the snapshot's touchpoint no longer listed: not known
    unknown = msgspec.structs.replace(seen, recent=recent)
    watch = watch_risk(later, unknown, clicked, ChurnRisk(), subject="s")
    assert watch.example is not None and watch.example.y is False


def test_a_churn_signal_come_again_does_not_label_the_snapshot_taken_after_it() -> None:
    """An unsubscribe labelled the pending snapshot, and an email opened two minutes later
    took a new one. The unsubscribe come again (a producer's retry, a batch redone) was
    within the 15 minutes a signal may precede a snapshot, and labelled that one too."""
    unsubscribed = Email(event_id="u1", customer_id="cust-1", ts=T0, action="unsubscribed")
    opened = Email(event_id="o1", customer_id="cust-1", ts=T0 + timedelta(minutes=2),
                   action="opened")  # fmt: skip
    listed = [RecentTouchpoint(opened.ts, "email", "o1"), RecentTouchpoint(T0, "email", "u1")]
    both = CustomerFeatures(risk_snapshot=WAITING.risk_snapshot, last_seen=opened.ts,
                            recent=listed)  # fmt: skip
    first = watch_risk(opened, both, opened.ts, ChurnRisk(), subject="s",
                       alongside=[unsubscribed, opened])  # fmt: skip
    assert first.example is not None and first.example.y is True  # the older snapshot
    assert first.snapshot is not None and decode_snapshot(first.snapshot).held == ("u1",)
    seen = msgspec.structs.replace(both, risk_snapshot=first.snapshot)
    again = watch_risk(unsubscribed, seen, opened.ts, ChurnRisk(), subject="s")
    assert again.example is None  # there when the snapshot was taken: its features hold it
    # one that came after the snapshot was taken (late, or from a slow clock) labels it
    unheld = pending_snapshot({"experience": 0.4}, ts_ms(opened.ts), "o1")
    later = watch_risk(unsubscribed, msgspec.structs.replace(seen, risk_snapshot=unheld),
                       opened.ts, ChurnRisk(), subject="s")  # fmt: skip
    assert later.example is not None and later.example.y is True


def test_a_late_touchpoint_older_than_the_list_makes_no_lapse() -> None:
    """Active every five days, then twenty email clicks on day 46 pushed the older
    touchpoints out of the list: a call record dated day -1 arriving late was paired with
    the oldest listed (day 46), a 47-day "lapse" that never was."""
    snapped = SNAPSHOT_AT - timedelta(days=46)
    snapshot = pending_snapshot({"experience": 0.4}, ts_ms(snapped), "click-0")
    burst = [RecentTouchpoint(SNAPSHOT_AT + timedelta(minutes=m), "email", f"b{m}")
             for m in range(20)]  # fmt: skip
    late = Call(event_id="late", customer_id="cust-1", ts=snapped - timedelta(days=1),
                status="started", direction="inbound", reason="support")  # fmt: skip
    seen = CustomerFeatures(risk_snapshot=snapshot, last_seen=burst[-1].ts, recent=burst[::-1])
    watch = watch_risk(late, seen, SNAPSHOT_AT, ChurnRisk(), subject="s")
    assert watch.example is None


async def test_a_batch_redone_after_a_crash_keeps_its_churn_label() -> None:
    """A cancel call dated a minute before the pending snapshot (taken at a click from a
    fast clock) came after it; the worker labelled the snapshot, then stopped before the
    batch was done. Redone, the call is a duplicate: it must label the snapshot again."""
    snapshot = pending_snapshot({"experience": 0.4}, ts_ms(T0 + timedelta(minutes=1)), "c2")
    taken = msgspec.structs.replace(WAITING, risk_snapshot=snapshot)
    for status in (ApplyStatus.APPLIED, ApplyStatus.DUPLICATE):
        store = RecordingStore(features={"cust-1": taken}, statuses={"call": status})
        result = await handler(store).handle(batch(cancel_call("call")))
        assert [e.y for e in result.risk_examples] == [True], status


async def test_the_late_touchpoint_makes_no_lapse_through_the_worker_either() -> None:
    """The cut of the batch's touchpoints older than the list read before it: the worker
    adds the batch's own to the features first, so a cut on those cut nothing."""
    snapped = SNAPSHOT_AT - timedelta(days=46)
    snapshot = pending_snapshot({"experience": 0.4}, ts_ms(snapped), "click-0")
    burst = [RecentTouchpoint(SNAPSHOT_AT + timedelta(minutes=m), "email", f"b{m}")
             for m in range(20)]  # fmt: skip
    seen = msgspec.structs.replace(WAITING, risk_snapshot=snapshot, recent=burst[::-1],
                                   last_seen=burst[-1].ts)  # fmt: skip
    late = Call(event_id="late", customer_id="cust-1", ts=snapped - timedelta(days=1),
                status="started", direction="inbound", reason="support")  # fmt: skip
    result = await handler(RecordingStore(features={"cust-1": seen})).handle(batch(late))
    assert result.risk_examples == []


def test_a_snapshot_that_cannot_be_read_is_replaced_by_a_new_one() -> None:
    """A pending snapshot no JSON decoder reads, or whose time no date can hold (a tool's,
    a bug's): every touchpoint of the customer failed its watch (their decision was taken
    again without it: no risk band, no alert), and the snapshot stayed for good. Now it is
    read as none: the touchpoint takes a new snapshot, which replaces it."""
    event = click("c1")
    for stored in ("not json", '{"x": {}, "ts_ms": -100000000000000000000}',
                   '{"x": {}, "ts_ms": 100000000000000000000}'):  # fmt: skip
        broken = msgspec.structs.replace(WAITING, risk_snapshot=stored)
        watch = watch_risk(event, broken, event.ts, ChurnRisk(), subject="s")
        assert watch.example is None and 0.0 <= watch.risk <= 1.0  # scored
        assert watch.snapshot is not None and decode_snapshot(watch.snapshot).ts_ms == ts_ms(T0)
