"""A zero time written with an offset east of UTC is year 0 in UTC: decoded as the
calendar's first instant, so that a batch holding it is decided like any other."""

from datetime import UTC, datetime

from agents.batch_history import with_batch_history
from feature_store import CustomerFeatures
from schemas import decode_outcome, decode_touchpoint


def test_a_zero_time_east_of_utc_reads_as_the_first_instant_and_its_batch_is_decided() -> None:
    zero = decode_touchpoint(
        b'{"type": "web_click", "event_id": "z", "customer_id": "c",'
        b' "ts": "0001-01-01T00:00:00+14:00", "page": "/"}'
    )
    now = decode_touchpoint(
        b'{"type": "web_click", "event_id": "n", "customer_id": "c",'
        b' "ts": "2026-12-06T10:00:00Z", "page": "/"}'
    )
    assert zero.ts == datetime(1, 1, 1, tzinfo=UTC)
    history = with_batch_history(CustomerFeatures(), None, [zero, now]).recent
    assert [r.event_id for r in history] == ["n", "z"]


def test_an_outcome_dated_so_decodes_too() -> None:
    outcome = decode_outcome(
        b'{"decision_id": "d", "customer_id": "c", "offer_id": "o", "outcome": "clicked",'
        b' "ts": "0001-01-01T05:00:00+06:00"}'
    )
    assert outcome.ts == datetime(1, 1, 1, tzinfo=UTC)
