"""agents.risk_sweep: labelling pending churn-risk snapshots by the clock."""

from __future__ import annotations

from datetime import UTC, datetime

from agents.risk_sweep import sweep_label
from feature_store import PendingRisk

DAY_MS = 86_400_000


def at(day: float) -> datetime:
    return datetime.fromtimestamp(day * DAY_MS / 1000, tz=UTC)


def pending(last_seen_day: float | None, snapshot_day: float = 0.0) -> PendingRisk:
    snapshot = f'{{"x": {{"experience": 0.4}}, "ts_ms": {int(snapshot_day * DAY_MS)}}}'
    seen = None if last_seen_day is None else int(last_seen_day * DAY_MS)
    return PendingRisk("subject-1", snapshot, seen)


def test_a_quiet_spell_of_the_lapse_period_is_a_positive_example() -> None:
    example = sweep_label(pending(last_seen_day=5), at(5 + 45))
    assert example is not None and example.y is True
    assert example.snapshot_ts == at(0) and example.label_ts == at(50)
    assert example.example_id == "risk:subject-1:0"  # the same snapshot: the same id


def test_a_spell_still_shorter_than_the_lapse_period_waits() -> None:
    assert sweep_label(pending(last_seen_day=5), at(5 + 44)) is None


def test_seen_after_the_horizon_without_lapsing_is_a_negative_example() -> None:
    example = sweep_label(pending(last_seen_day=35), at(40))
    assert example is not None and example.y is False


def test_a_spell_that_started_after_the_horizon_is_not_a_lapse_of_this_snapshot() -> None:
    example = sweep_label(pending(last_seen_day=31), at(31 + 50))
    assert example is not None and example.y is False


def test_an_unreadable_snapshot_is_left_alone() -> None:
    broken = PendingRisk("subject-1", "not json", 0)
    assert sweep_label(broken, at(100)) is None
