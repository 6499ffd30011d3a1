"""Quiet hours where the clocks change: a span that ends in the hour the clocks skip ends
at a time that exists that day, the one at which the channel stops being quiet; and a
span in force when the clocks go back holds through the time lived twice."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import ContactRules
from schemas.contact_rules import first_existing
from schemas.timezones import zone

ZONES = ("Europe/London", "America/New_York", "Australia/Lord_Howe", "America/Santiago",
         "Australia/Sydney", "Asia/Kolkata")  # fmt: skip


@pytest.mark.parametrize(
    ("timezone", "span", "now", "until"),
    [
        # London skips 01:00-02:00 on 29 March 2026; asked the evening before, and in the night
        ("Europe/London", "20:00-01:30", datetime(2026, 3, 28, 21, tzinfo=UTC), "02:00"),
        ("Europe/London", "20:00-01:30", datetime(2026, 3, 29, 0, 30, tzinfo=UTC), "02:00"),
        ("Europe/London", "00:30-01:00", datetime(2026, 3, 29, 0, 45, tzinfo=UTC), "02:00"),
        # New York skips 02:00-03:00 on 8 March 2026
        ("America/New_York", "21:00-02:30", datetime(2026, 3, 8, 3, tzinfo=UTC), "03:00"),
        # Lord Howe skips half an hour, 02:00-02:30, on 4 October 2026
        ("Australia/Lord_Howe", "22:00-02:15", datetime(2026, 10, 3, 12, tzinfo=UTC), "02:30"),
        # an end that exists: as written, the day before, and the day the clocks go back
        ("Europe/London", "20:00-01:30", datetime(2026, 3, 27, 21, tzinfo=UTC), "01:30"),
        ("Europe/London", "20:00-01:30", datetime(2026, 10, 24, 21, tzinfo=UTC), "01:30"),
    ],
)
def test_a_span_ending_where_the_clocks_jump_ends_when_they_land(
    timezone: str, span: str, now: datetime, until: str
) -> None:
    rules = ContactRules(quiet_hours={"call": span}, timezone=timezone)
    assert rules.quiet_until("call", now) == until
    assert rules.quiet_until("call", now, timezone) == until  # as the customer's own zone


def test_a_skipped_time_becomes_the_first_that_exists() -> None:
    def existing(timezone: str, day: date, minute: int) -> str:
        return f"{first_existing(timezone, day, minute):%Y-%m-%d %H:%M}"

    assert existing("Europe/London", date(2026, 3, 29), 60) == "2026-03-29 02:00"
    assert existing("Europe/London", date(2026, 3, 29), 119) == "2026-03-29 02:00"
    assert existing("Europe/London", date(2026, 3, 29), 120) == "2026-03-29 02:00"
    assert existing("Europe/London", date(2026, 3, 29), 59) == "2026-03-29 00:59"
    assert existing("Europe/London", date(2026, 10, 25), 90) == "2026-10-25 01:30"  # twice
    # Santiago's clocks jump from midnight to 01:00
    assert existing("America/Santiago", date(2026, 9, 6), 0) == "2026-09-06 01:00"


def test_clocks_that_jump_over_the_end_and_the_next_start_stay_quiet_to_the_next_end() -> None:
    """Quiet but for the minute after midnight, which Santiago skips on 6 September 2026:
    the channel is quiet from the evening before to the midnight after."""
    rules = ContactRules(quiet_hours={"call": "00:01-00:00"}, timezone="America/Santiago")
    evening = datetime(2026, 9, 6, 3, 59, tzinfo=UTC)  # 23:59 on the 5th there
    assert rules.quiet_until("call", evening) == "00:00"
    assert rules.quiet_at("call", evening + timedelta(minutes=1))  # 01:00 on the 6th
    assert rules.quiet_at("call", datetime(2026, 9, 7, 2, 59, tzinfo=UTC))  # 23:59 on the 6th
    assert not rules.quiet_at("call", datetime(2026, 9, 7, 3, tzinfo=UTC))  # 00:00 on the 7th


def _clock_changes() -> list[tuple[str, datetime]]:
    """The instants of 2026 the clocks of :data:`ZONES` go forward or back, to the hour."""
    found = []
    for name in ZONES:
        at = datetime(2026, 1, 1, tzinfo=UTC)
        offset = at.astimezone(zone(name)).utcoffset()
        while at.year == 2026:
            at += timedelta(hours=1)
            now = at.astimezone(zone(name)).utcoffset()
            if now != offset:
                found.append((name, at))
            offset = now
    return found


CLOCK_CHANGES = _clock_changes()
MINUTES = st.integers(0, 23 * 60 + 59)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(CLOCK_CHANGES), st.integers(-26 * 60, 2 * 60), MINUTES, MINUTES)
def test_the_end_named_is_when_quiet_hours_stop_by_the_clock(
    transition: tuple[str, datetime], shift: int, start: int, end: int
) -> None:
    """Around each change of the clocks, forward or back, the end named is the local
    time at the first minute the channel is no longer quiet."""
    if start == end:
        return
    name, changed = transition
    span = f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"
    rules = ContactRules(quiet_hours={"call": span}, timezone=name)
    now = changed + timedelta(minutes=shift)
    until = rules.quiet_until("call", now)
    if until is None:
        assert not rules.quiet_at("call", now)
        return
    later = now
    while rules.quiet_at("call", later):
        later += timedelta(minutes=1)
    assert until == f"{later.astimezone(zone(name)):%H:%M}", (span, now)


@pytest.mark.parametrize(
    ("timezone", "span", "now", "until"),
    [
        # London goes back from 02:00 BST to 01:00 GMT on 25 October 2026
        ("Europe/London", "01:30-05:00", datetime(2026, 10, 25, 0, 45, tzinfo=UTC), "05:00"),
        ("Europe/London", "01:30-05:00", datetime(2026, 10, 25, 1, 0, tzinfo=UTC), "05:00"),
        ("Europe/London", "01:30-05:00", datetime(2026, 10, 25, 1, 29, tzinfo=UTC), "05:00"),
        ("Europe/London", "01:59-01:00", datetime(2026, 10, 25, 1, 0, tzinfo=UTC), "01:00"),
        # New York goes back from 02:00 EDT to 01:00 EST on 1 November 2026
        ("America/New_York", "01:15-06:00", datetime(2026, 11, 1, 6, 5, tzinfo=UTC), "06:00"),
        # Lord Howe goes back half an hour, from 02:00 to 01:30, on 5 April 2026
        ("Australia/Lord_Howe", "01:45-07:00", datetime(2026, 4, 4, 15, 0, tzinfo=UTC), "07:00"),
    ],
)
def test_quiet_hours_in_force_when_the_clocks_go_back_hold_through_the_time_lived_twice(
    timezone: str, span: str, now: datetime, until: str
) -> None:
    rules = ContactRules(quiet_hours={"call": span}, timezone=timezone)
    assert rules.quiet_until("call", now) == until
    assert rules.quiet_until("call", now, timezone) == until


@pytest.mark.parametrize(
    ("span", "now"),
    [
        ("01:30-05:00", datetime(2026, 10, 25, 0, 29, tzinfo=UTC)),  # 01:29 BST, not yet
        ("00:00-01:30", datetime(2026, 10, 25, 1, 40, tzinfo=UTC)),  # over at 01:30 BST
        ("01:10-01:20", datetime(2026, 10, 25, 1, 40, tzinfo=UTC)),
        ("01:30-05:00", datetime(2026, 10, 26, 1, 0, tzinfo=UTC)),  # a day later, no change
    ],
)
def test_quiet_hours_not_in_force_when_the_clocks_go_back_go_by_the_clock(
    span: str, now: datetime
) -> None:
    rules = ContactRules(quiet_hours={"call": span}, timezone="Europe/London")
    assert rules.quiet_until("call", now) is None
