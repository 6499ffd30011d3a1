"""The re-drive's dedupe horizon counts from when a record was first dead-lettered: Moments
remembers an event from its first apply, and a duplicate sent back later does not renew
that, so a record that failed again after a re-drive is as old as its first letter."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from agents.letters import dead_letter, letter_key, source_record
from streams.dead_letters import FIRST_LETTERED, DeadLetter
from streams.redrive_plan import RedrivePlan

DAY_MS = 86_400_000
DAY_0 = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp() * 1000)
HORIZON_DAYS = 8


def plan_on_day(day: int) -> RedrivePlan:
    """A re-drive run on ``day``: Moments remembers the events applied since the horizon."""
    now = DAY_0 + day * DAY_MS
    return RedrivePlan(frozenset({"touchpoints"}), remembered_from_ms=now - HORIZON_DAYS * DAY_MS)


def headers(
    origin: int, redriven_from: str | None = None, first_ms: int | None = None
) -> list[tuple[bytes, bytes]]:
    found = [(b"source-topic", b"touchpoints"), (b"source-partition", b"0"),
             (b"source-offset", str(origin).encode()),
             (b"error", b"decision failed: RuntimeError: boom")]  # fmt: skip
    if redriven_from is not None:
        found.append((b"redriven-from", redriven_from.encode()))
    if first_ms is not None:
        found.append((FIRST_LETTERED.encode(), str(first_ms).encode()))
    return found


def written(offset: int, day: int, found: list[tuple[bytes, bytes]]) -> DeadLetter:
    return DeadLetter.of("touchpoints-dlq", 0, offset, DAY_0 + day * DAY_MS, b"c-1", b"{}", found)


# Day 0: the event is applied and its decision fails (letter 1). Day 7: letter 1 is sent
# back, applied as a duplicate, and its decision fails again (letter 2, a new origin).
FIRST = written(10, 0, headers(origin=5))
AGAIN_WITHOUT_HEADER = written(11, 7, headers(origin=40, redriven_from="touchpoints-dlq:0:10"))


def test_a_letter_written_again_after_a_redrive_is_as_old_as_the_first() -> None:
    plan = plan_on_day(10)  # day 0 is beyond the horizon now; day 7 is not
    plan.track(FIRST)
    plan.track(AGAIN_WITHOUT_HEADER)
    assert plan.take(AGAIN_WITHOUT_HEADER) == "too_old"


def test_the_first_letters_time_travels_in_a_header() -> None:
    again = written(11, 7, headers(40, "touchpoints-dlq:0:10", first_ms=FIRST.written_ms))
    assert again.first_lettered_ms == FIRST.written_ms
    plan = plan_on_day(10)
    plan.track(again)  # the first letter itself is no longer in the topic
    assert plan.take(again) == "too_old"
    assert plan_on_day(7).take(again) == "redriven"  # still within the horizon on day 7


def test_a_letter_whose_first_letter_cannot_be_found_is_not_sent_back() -> None:
    plan = plan_on_day(8)
    plan.track(AGAIN_WITHOUT_HEADER)
    assert plan.take(AGAIN_WITHOUT_HEADER) == "too_old"


def test_a_redrive_within_the_horizon_carries_the_first_letters_time() -> None:
    plan = plan_on_day(5)
    for letter in (FIRST, AGAIN_WITHOUT_HEADER):
        plan.track(letter)
    assert plan.take(AGAIN_WITHOUT_HEADER) == "redriven"
    first = plan.first_lettered(AGAIN_WITHOUT_HEADER)
    assert first == FIRST.written_ms
    assert AGAIN_WITHOUT_HEADER.redrive_headers(first) == [
        ("redriven-from", b"touchpoints-dlq:0:11"),
        (FIRST_LETTERED, str(FIRST.written_ms).encode()),
    ]
    # a letter never sent back before is dated by itself
    assert plan.first_lettered(FIRST) == FIRST.written_ms


def test_a_garbled_first_letter_header_reads_as_absent() -> None:
    garbled = written(12, 7, [*headers(40), (FIRST_LETTERED.encode(), b"soon")])
    assert garbled.first_lettered_ms is None and not garbled.redriven
    assert plan_on_day(10).take(garbled) == "redriven"  # dated by itself: day 7


def test_a_record_sent_back_that_fails_again_keeps_its_first_letters_time() -> None:
    sent_back = SimpleNamespace(
        topic="touchpoints", partition=0, offset=40, key=b"c-1", value=b"{}",
        headers=FIRST.redrive_headers(FIRST.written_ms),
    )  # fmt: skip
    record = source_record(sent_back)
    _, letter_headers = dead_letter(record, "decision failed: RuntimeError: boom")
    again = DeadLetter.of("touchpoints-dlq", 0, 11, DAY_0 + 7 * DAY_MS, b"c-1", b"{}",
                          [(k.encode(), v) for k, v in letter_headers])  # fmt: skip
    assert again.first_lettered_ms == FIRST.written_ms
    assert again.redriven_from == "touchpoints-dlq:0:10"
    assert plan_on_day(10).take(again) == "too_old"


def test_a_letter_whose_key_was_replaced_is_not_sent_back() -> None:
    record = SimpleNamespace(topic="touchpoints", partition=0, offset=3, key=b"k" * 5000,
                             value=b"{}", headers=[])  # fmt: skip
    source = source_record(record)
    value, letter_headers = dead_letter(source, "invalid: $.type: unknown")
    letter = DeadLetter.of("touchpoints-dlq", 0, 12, DAY_0, letter_key(source.key), value,
                           [(k.encode(), v) for k, v in letter_headers])  # fmt: skip
    assert letter.truncated
    assert plan_on_day(1).take(letter) == "truncated"
