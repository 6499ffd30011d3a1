"""A time stored in milliseconds that no date can hold (a tool's, a bug's) reads as a
fault of its customer's values, as one that is no number does: converted, a time past
year 2 million raised OSError, which the worker's batch retries take for an outage
(waited out for good, not dead-lettered). Today's readers catch any error per customer,
so it cost that customer alone; this keeps it so for any reader."""

from __future__ import annotations

import pytest

from agents.batch_retries import outage
from feature_store.features import recent_touchpoint, stored_time


@pytest.mark.parametrize("ms", [-(10**20), 10**20, 10**17, -(10**17), 10**30])
def test_a_time_no_date_can_hold_is_no_outage(ms: int) -> None:
    for read in (lambda: stored_time(str(ms)), lambda: recent_touchpoint(f"{ms}|web_click|e1")):
        with pytest.raises(ValueError, match="a time no date can hold") as raised:
            read()
        assert not outage(raised.value)


def test_a_time_that_is_no_number_is_int_s_own_error() -> None:
    with pytest.raises(ValueError, match="invalid literal"):
        stored_time("yesterday")
