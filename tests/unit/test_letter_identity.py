"""A dead letter's record is known by its place and what the letter holds of it: the
rebuild's hold-outs, the re-drive plan and the summary's distinct records (Kafka may give
a place again: a partition that lost its tail, a topic made again)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import msgspec

from agents.letters import LETTER_MAX, SourceRecord, dead_letter
from feature_store import ApplyStatus
from schemas import WebClick, decode_redrive, encode_redrive
from streams.dead_letters import DeadLetter, DeadLetterSummary
from streams.letter_identity import Held
from streams.rebuild_replay import Replay
from streams.redrive_plan import RedrivePlan
from streams.settings import Settings

NOW_MS = int(time.time() * 1000)


def letter_record(
    value: bytes,
    offset: int = 42,
    at: int = 1,
    error: str = "invalid: x",
    written_ms: int = NOW_MS - 60_000,
) -> Any:
    """The letter a worker writes for the record ``value`` read at touchpoints[0]@offset,
    as a consumer reads it from ``touchpoints-dlq``."""
    kept, headers = dead_letter(SourceRecord("touchpoints", 0, offset, b"c", value), error)
    return SimpleNamespace(topic="touchpoints-dlq", partition=0, offset=at, key=b"c",
                           timestamp=written_ms, value=kept, headers=headers)  # fmt: skip


def lettered(value: bytes, offset: int = 42, at: int = 1, error: str = "invalid: x") -> DeadLetter:
    found = letter_record(value, offset, at, error)
    return DeadLetter.of(found.topic, found.partition, found.offset, found.timestamp,
                         found.key, found.value, found.headers)  # fmt: skip


def test_a_letter_cut_short_holds_its_records_start_and_length() -> None:
    big = b'{"type": "web_click", "page": "' + b"p" * LETTER_MAX + b'"}'
    held = lettered(big).held
    assert held.kept is not None and held.kept < len(big) and held.whole == len(big)
    assert held.matches(big)
    assert not held.matches(b"q" + big[1:])  # another start
    # beyond the start it keeps, a letter cannot tell: a record of that start and length
    assert held.matches(big[: held.kept] + b"x" * (len(big) - held.kept))
    assert not held.matches(big + b" ")  # a longer record of the same start
    assert not held.matches(big[: held.kept])
    whole = lettered(b"{}").held
    assert (whole.kept, whole.matches(b"{}"), whole.matches(b"{} ")) == (None, True, False)
    assert Held.of(b"ab", cut_from=-1).matches(b"abc")  # its length unreadable: the start


def test_a_new_letter_at_a_place_sent_back_before_goes_back() -> None:
    """An earlier run sent back the letter of a record lost since; the letter of the
    record Kafka wrote at its place since is another original: it goes back."""
    plan = RedrivePlan(frozenset({"touchpoints"}), remembered_from_ms=0)
    old, new = lettered(b'{"lost": 1}', at=1), lettered(b'{"other": 2}', at=9)
    plan.remember(decode_redrive(encode_redrive(old.redriven_at(datetime.now(UTC)))))
    again = lettered(b'{"lost": 1}', at=3)  # the lost record's letter written twice
    assert [plan.take(new), plan.take(again), plan.take(old)] == [
        "redriven", "sent_before", "sent_before"]  # fmt: skip


def test_two_records_at_one_place_go_back_in_one_run() -> None:
    plan = RedrivePlan(frozenset({"touchpoints"}), remembered_from_ms=0)
    values = [b'{"lost": 1}', b'{"other": 2}', b'{"lost": 1}']
    verdicts = [plan.take(lettered(value, at=n)) for n, value in enumerate(values)]
    assert verdicts == ["redriven", "redriven", "repeated"]


def test_a_record_of_a_redrive_written_before_digests_tells_its_original_by_place() -> None:
    """Written before records carried a digest: every letter naming that place was sent
    back, as that version counted it."""
    recorded = decode_redrive(b'{"letter":"touchpoints-dlq:0:1","origin":"touchpoints:0:42",'
                              b'"ts":"2026-11-01T00:00:00Z"}')  # fmt: skip
    assert recorded.digest is None
    plan = RedrivePlan(frozenset({"touchpoints"}), remembered_from_ms=0)
    plan.remember(recorded)
    assert plan.take(lettered(b'{"other": 2}', at=9)) == "sent_before"
    assert plan.take(lettered(b'{"other": 2}', offset=43, at=10)) == "redriven"


def test_distinct_records_tell_two_records_at_one_place_apart() -> None:
    summary = DeadLetterSummary()
    for n, value in enumerate([b'{"lost": 1}', b'{"lost": 1}', b'{"other": 2}']):
        found = lettered(value, at=n)
        summary.saw(found)
        summary.add(found)
    assert summary.report()["touchpoints"]["distinct_records"] == 2


def test_letters_of_one_record_cut_short_with_other_reasons_count_as_one_record() -> None:
    """Each letter cut its record at a length of its own (its reason's length counts), so
    one record read again, or given up with another reason, counted as two."""
    big = b'{"type": "web_click", "page": "' + b"p" * LETTER_MAX + b'"}'
    summary = DeadLetterSummary()
    reasons = ["invalid: too long", "batch failed 3 times: Redis timed out after 5 s"]
    for n, reason in enumerate(reasons):
        found = lettered(big, at=n, error=reason)
        assert found.held.matches(big)
        summary.saw(found)
        summary.add(found)
    assert summary.report()["touchpoints"]["distinct_records"] == 1


class Applied:
    """A stand-in store that applies every touchpoint given."""

    def __init__(self) -> None:
        self.applied: list[str] = []

    async def apply(self, events: list[Any], ran: Any = None) -> list[ApplyStatus]:
        self.applied += [e.event_id for e in events]
        return [ApplyStatus.APPLIED] * len(events)


def click(event_id: str, minutes_ago: float = 5) -> bytes:
    at = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return msgspec.json.encode(WebClick(event_id=event_id, customer_id="c", ts=at, page="/"))


async def test_the_rebuild_holds_out_only_the_record_a_letter_holds() -> None:
    """A letter of a record lost since (refused, or of a batch given up long ago) holds out
    nothing at its place now; one of the record there does."""
    store = Applied()
    run = Replay(Settings.from_env({}), store, 500)  # type: ignore[arg-type]
    run.source = "touchpoints"
    refused, ahead = click("refused"), click("ahead", minutes_ago=60)
    day_ago = NOW_MS - 86_400_000  # when the worker took the batches given up
    given_up = "batch failed 3 times: boom"
    await run._dead_letters([
        letter_record(b'{"type": "web_click", "event_id"', offset=1, at=0),  # lost since
        letter_record(refused, offset=2, at=1, error="feature update failed: boom"),
        letter_record(click("lost"), offset=3, at=2, error=given_up, written_ms=day_ago),
        letter_record(ahead, offset=4, at=3, error=given_up, written_ms=day_ago),
    ])  # fmt: skip
    read = [(1, click("good")), (2, refused), (3, click("later", minutes_ago=1)), (4, ahead)]
    await run._touchpoints([
        SimpleNamespace(value=value, partition=0, offset=offset, timestamp=NOW_MS)
        for offset, value in read
    ])  # fmt: skip
    assert store.applied == ["good", "later"] and run.invalid == 2
