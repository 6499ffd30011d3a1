"""``moments lift``: which period of first decisions it measures, from its options."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from streams import lift_report
from streams.cli import main
from streams.control_lift import LiftPeriod

DAY = timedelta(days=1)


@pytest.fixture
def measured(monkeypatch: pytest.MonkeyPatch) -> list[LiftPeriod]:
    """The periods ``moments lift`` asks to be measured (nothing is read from Kafka)."""
    periods: list[LiftPeriod] = []

    async def measure(settings: Any, period: LiftPeriod, *args: Any, **kw: Any) -> dict[str, Any]:
        periods.append(period)
        return {"cut_by_retention": {}}  # what the report says besides its figures

    monkeypatch.setattr(lift_report, "measure_lift", measure)
    return periods


def closed_by_now(window: timedelta = 7 * DAY) -> datetime:
    return datetime.now(UTC) - window


def test_since_with_days_measures_those_days(measured: list[LiftPeriod]) -> None:
    since = datetime.now(UTC) - 40 * DAY
    assert main(["lift", "--since", since.isoformat(), "--days", "5"]) == 0
    (period,) = measured
    assert (period.since, period.until) == (since, since + 5 * DAY)


def test_since_with_days_stops_where_windows_are_still_open(measured: list[LiftPeriod]) -> None:
    since = datetime.now(UTC) - 10 * DAY
    assert main(["lift", "--since", since.isoformat(), "--days", "28", "--window", "2d"]) == 0
    (period,) = measured
    assert period.since == since
    assert abs(period.until - closed_by_now(2 * DAY)) < timedelta(minutes=1)


def test_the_other_combinations_keep_their_periods(measured: list[LiftPeriod]) -> None:
    since, until = datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC)
    assert main(["lift"]) == 0
    assert main(["lift", "--days", "3"]) == 0
    assert main(["lift", "--since", since.isoformat()]) == 0
    assert main(["lift", "--until", until.isoformat(), "--days", "10"]) == 0
    assert main(["lift", "--until", until.isoformat()]) == 0
    assert main(["lift", "--since", since.isoformat(), "--until", until.isoformat()]) == 0
    default, three, from_since, ten, to_until, between = measured
    for period in (default, three, from_since):
        assert abs(period.until - closed_by_now()) < timedelta(minutes=1)
    assert (default.until - default.since, three.until - three.since) == (28 * DAY, 3 * DAY)
    assert from_since.since == since
    assert (ten.since, ten.until) == (until - 10 * DAY, until)
    assert (to_until.since, to_until.until) == (until - 28 * DAY, until)
    assert (between.since, between.until) == (since, until)


def test_days_with_both_ends_is_refused(
    measured: list[LiftPeriod], capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--since", "2026-09-01", "--until", "2026-10-01", "--days", "3"]
    assert main(["lift", *args]) == 2
    assert "--days" in capsys.readouterr().err and measured == []
