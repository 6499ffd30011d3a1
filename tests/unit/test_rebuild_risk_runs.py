"""Where ``moments rebuild`` reads a customer's risk figures as of their last scored
touchpoint during the replay: before the first later fact that would prune the oldest
days of its windows, not after the whole replay (streams/rebuild_risk.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from feature_store.facts import ts_ms
from schemas import Call, Email, TouchpointEvent
from streams.rebuild_risk import RiskView, due_before, run_end

D = datetime(2026, 11, 1, 12, tzinfo=UTC)


def complaint(customer: str, at: datetime) -> TouchpointEvent:
    return Call(event_id=f"{customer}-c-{at:%j%H}", customer_id=customer, ts=at,
                status="started", direction="inbound", reason="complaint")  # fmt: skip


def click(customer: str, at: datetime) -> TouchpointEvent:
    return Email(event_id=f"{customer}-e-{at:%j%H}", customer_id=customer, ts=at, action="clicked")


def test_a_run_ends_before_the_fact_that_prunes_a_moment_scored_in_it() -> None:
    day = timedelta(days=1)
    events = [complaint("a", D), click("a", D + day), click("b", D + 9 * day),
              click("a", D + 2 * day), click("a", D + 3 * day)]  # fmt: skip
    assert run_end(events, 0, {}) == 3  # the click two days after a's complaint
    assert run_end(events, 3, {}) == 5  # a's read as of it is taken by then


def test_a_late_scored_touchpoint_moves_no_moment() -> None:
    seen = {"a": ts_ms(D + timedelta(days=5))}  # scored later already
    events = [complaint("a", D), click("a", D + timedelta(days=6))]
    assert run_end(events, 0, seen) == 2


def test_a_moment_scored_in_an_earlier_batch_is_read_before_a_batch_that_prunes_it() -> None:
    seen = {"a": ts_ms(D), "b": ts_ms(D), "c": ts_ms(D)}
    events = [click("a", D + timedelta(days=1)), click("a", D + timedelta(days=2)),
              complaint("b", D + timedelta(days=3)), click("b", D + timedelta(days=5)),
              click("c", D + timedelta(days=2))]  # fmt: skip
    assert due_before(events, seen, {}) == [("a", ts_ms(D)), ("c", ts_ms(D))]
    # b is scored anew first; c's figures as of its moment are taken already
    taken = {"c": RiskView(ts_ms(D), {}, "", [])}
    assert due_before(events, seen, taken) == [("a", ts_ms(D))]
