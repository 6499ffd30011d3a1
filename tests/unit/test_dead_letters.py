"""streams.dead_letters: reading letters, the summary, the filter and the re-drive plan."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agents.letters import SourceRecord, dead_letter_headers
from schemas import decode_redrive
from streams.dead_letters import (
    TOP_REASONS,
    DeadLetter,
    DeadLetterSummary,
    LetterFilter,
)
from streams.redrive_plan import RedrivePlan

T0 = int(datetime(2026, 12, 1, tzinfo=UTC).timestamp() * 1000)


def letter(
    offset: int = 0,
    written_ms: int = T0,
    source: str = "touchpoints",
    origin: int | None = None,
    error: str = "invalid: Expected `str`, got `int` - at `$.page`",
    key: bytes | None = b"cust-1",
    value: bytes | None = b"{}",
) -> DeadLetter:
    origin = offset if origin is None else origin
    return DeadLetter("touchpoints-dlq", 0, offset, written_ms, key, value, source, 2, origin,
                      error)  # fmt: skip


def test_a_letter_reads_its_headers_and_tolerates_missing_or_garbled_ones() -> None:
    full = DeadLetter.of("dlq", 1, 5, T0, b"k", b"v", [
        ("source-topic", b"touchpoints"), ("source-partition", b"3"),
        ("source-offset", b"41"), ("error", b"invalid: bad"),
    ])  # fmt: skip
    assert (full.origin, full.stage, full.error) == (
        ("touchpoints", 3, 41),
        "invalid",
        "invalid: bad",
    )
    bare = DeadLetter.of("dlq", 1, 6, T0, None, None, [("source-offset", b"x\xff")])
    assert (bare.origin, bare.error, bare.reason) == (("unknown", -1, -1), "unknown", "unknown")


def test_reasons_never_show_the_letters_own_customer_id() -> None:
    failed = letter(error="decision failed: KeyError: 'cust-1' not in cust-1's view")
    assert failed.reason == "decision failed: KeyError: '<customer>' not in <customer>'s view"
    assert failed.stage == "decision failed"
    assert letter(key=None, error="invalid: x").reason == "invalid: x"


def test_reasons_never_show_the_customer_id_a_record_names_whatever_its_key() -> None:
    value = b'{"type": "web_click", "customer_id": "alice-42", "page": 7}'
    for key in (None, b"session-77", b"alice-42"):
        found = letter(key=key, value=value, error="decision failed: KeyError: 'alice-42'")
        assert found.reason == "decision failed: KeyError: '<customer>'", key
    assert letter(key=None, value=b"{not json alice-42", error="x alice-42").reason == (
        "x alice-42"  # nothing names a customer: nothing to mask
    )


def test_a_record_of_an_erased_customer_is_not_sent_back_whatever_its_key() -> None:
    value = b'{"type": "web_click", "customer_id": "alice-42", "page": 7}'
    plan = RedrivePlan(frozenset({"touchpoints"}), remembered_from_ms=0, erased={"alice-42"})
    verdicts = [
        plan.take(letter(offset=n, key=key, value=value))
        for n, key in enumerate((None, b"session-77", b"alice-42"))
    ]
    assert verdicts == ["erased"] * 3
    cut_short = b'{"type": "web_click", "customer_id": "alice-42", "page": "/ca'
    a_number = b'{"type": "web_click", "customer_id": 4711, "page": "/"}'
    plan = RedrivePlan(
        frozenset({"touchpoints"}), remembered_from_ms=0, erased={"alice-42", "4711"}
    )
    assert plan.take(letter(offset=3, key=b"session-77", value=cut_short)) == "erased"
    assert plan.take(letter(offset=4, key=None, value=a_number)) == "erased"
    assert plan.take(letter(offset=9, key=b"bob", value=b'{"customer_id": "bob"}')) == "redriven"


def test_the_filter_picks_by_source_reason_and_time() -> None:
    assert LetterFilter().matches(letter())
    assert LetterFilter(frozenset({"offer-outcomes"})).matches(letter()) is False
    assert LetterFilter(reason_contains="$.PAGE").matches(letter())  # any case
    assert not LetterFilter(reason_contains="timezone").matches(letter())
    window = LetterFilter(since_ms=T0, until_ms=T0 + 1000)
    assert [window.matches(letter(written_ms=T0 + d)) for d in (-1, 0, 999, 1000)] == [
        False, True, True, False,
    ]  # fmt: skip
    # the filter reads the masked reason: a customer id cannot be searched for
    assert not LetterFilter(reason_contains="cust-1").matches(letter(error="x cust-1"))


def test_the_summary_counts_per_source_with_distinct_records_and_top_reasons() -> None:
    summary = DeadLetterSummary()
    for n in range(4):  # two records each dead-lettered twice (read again after a kill)
        summary.add(letter(n, T0 + n, origin=100 + n % 2))
    summary.add(letter(9, T0 - 5, error="decision failed: boom"))
    summary.add(letter(10, T0, source="offer-outcomes", error="invalid: no outcome"))
    report = summary.report()
    assert list(report) == ["offer-outcomes", "touchpoints"]
    touch = report["touchpoints"]
    assert touch["letters"] == 5 and touch["distinct_records"] == 3  # 100, 101 and 9
    assert touch["stages"] == {"decision failed": 1, "invalid": 4}
    assert touch["top_reasons"][0] == {"reason": letter().reason, "letters": 4}
    assert touch["first"] == "2026-11-30T23:59:59.995000Z"
    assert touch["last"] == "2026-12-01T00:00:00.003000Z"
    assert report["offer-outcomes"]["letters"] == 1


def test_records_alike_are_distinct_and_a_record_sent_back_is_the_one_first_lettered() -> None:
    """Three records of the same bytes (a producer sending one malformed event three
    times) are three; a record sent back that failed again, read before the letter it
    was sent back from, is that letter's record; letters that do not say where their
    record was read are told by their key and value."""
    summary = DeadLetterSummary()
    again = DeadLetter("touchpoints-dlq", 1, 0, T0, b"cust-1", b"{}", "touchpoints", 2, 50,
                       "invalid: x", redriven_from="touchpoints-dlq:0:2")  # fmt: skip
    found = [again, *(letter(n, origin=10 + n) for n in range(3))]
    found += [letter(7, origin=-1, value=b"v"), letter(8, origin=-1, value=b"v")]
    for each in found:
        summary.saw(each)
        summary.add(each)
    touch = summary.report()["touchpoints"]
    assert touch["letters"] == 6 and touch["distinct_records"] == 4
    assert touch["failed_again_after_redrive"] == 1


def test_an_error_a_batch_shared_is_masked_though_its_customers_letter_is_not_counted() -> None:
    """A filter that left out the named customer's own letter (a --reason holding part
    of their id, a time splitting the batch) printed their id from their batch-mates'."""
    shared = "batch failed 3 times: KeyError: 'cust-000042'"
    letters = [letter(n, key=f"cust-{n:06d}".encode(), error=shared) for n in (41, 42, 43)]
    wanted = LetterFilter(reason_contains="'cust-")
    summary = DeadLetterSummary()
    for found in letters:
        summary.saw(found)
        if wanted.matches(found):
            summary.add(found)
    (top,) = summary.report()["touchpoints"]["top_reasons"]
    assert top == {"reason": "batch failed 3 times: KeyError: '<customer>'", "letters": 2}


def test_distinct_records_tell_key_from_value() -> None:
    summary = DeadLetterSummary()
    summary.add(letter(0, key=b"ab", value=b"c"))
    summary.add(letter(1, key=b"a", value=b"bc"))
    assert summary.report()["touchpoints"]["distinct_records"] == 2


def test_only_the_commonest_reasons_are_listed() -> None:
    summary = DeadLetterSummary()
    for n in range(TOP_REASONS + 5):
        for _ in range(n + 1):
            summary.add(letter(error=f"invalid: reason {n:02d}"))
    top = summary.report()["touchpoints"]["top_reasons"]
    assert len(top) == TOP_REASONS
    assert top[0] == {
        "reason": f"invalid: reason {TOP_REASONS + 4:02d}",
        "letters": TOP_REASONS + 5,
    }
    assert [t["letters"] for t in top] == sorted((t["letters"] for t in top), reverse=True)


def test_the_summary_keeps_no_record_content() -> None:
    summary = DeadLetterSummary()
    summary.add(letter(key=b"cust-secret", value=b'{"customer_id": "cust-secret"}'))
    assert "cust-secret" not in repr(summary.report())


@pytest.mark.parametrize(
    ("written_ms", "verdict"), [(T0 - 1, "too_old"), (T0, "redriven"), (T0 + 1, "redriven")]
)
def test_letters_from_before_the_dedupe_horizon_stay(written_ms: int, verdict: str) -> None:
    plan = RedrivePlan(frozenset({"touchpoints"}), remembered_from_ms=T0)
    assert plan.take(letter(written_ms=written_ms)) == verdict


def test_each_original_goes_back_once_per_run_and_only_to_known_topics() -> None:
    plan = RedrivePlan(frozenset({"touchpoints", "offer-outcomes"}), remembered_from_ms=0)
    verdicts = [
        plan.take(letter(0, origin=7)),
        plan.take(letter(1, origin=7)),  # dead-lettered twice (a crash before the commit)
        plan.take(letter(2, origin=8)),
        plan.take(letter(3, origin=7, source="offer-outcomes")),  # another topic's offset 7
        plan.take(letter(4, source="next-best-offers")),
        plan.take(letter(5, source="unknown")),
    ]
    assert verdicts == ["redriven", "repeated", "redriven", "redriven", "unknown_source",
                        "unknown_source"]  # fmt: skip
    assert plan.outcomes == {"redriven": 3, "repeated": 1, "unknown_source": 2}


def test_a_record_sent_back_before_keeps_naming_its_letter_when_it_fails_again() -> None:
    from agents.letters import SourceRecord, dead_letter_headers, redriven_from

    named = b"touchpoints-dlq:0:17"
    assert redriven_from([("other", b"x"), ("redriven-from", named)]) == named
    assert redriven_from({"redriven-from": named}) == named
    assert redriven_from(None) is None and redriven_from([]) is None
    again = SourceRecord("touchpoints", 1, 40, b"k", b"{", redriven_from=named)
    headers = dead_letter_headers(again, "invalid: malformed JSON")
    assert ("redriven-from", named) in headers
    first = dead_letter_headers(SourceRecord("touchpoints", 1, 3, b"k", b"{"), "invalid: x")
    assert [k for k, _ in first] == ["source-topic", "source-partition", "source-offset", "error"]
    summary = DeadLetterSummary()
    for n, hs in enumerate((first, headers)):
        summary.add(DeadLetter.of("touchpoints-dlq", 0, n, T0, b"k", b"{", [
            (k, v) for k, v in hs]))  # fmt: skip
    report = summary.report()["touchpoints"]
    assert (report["letters"], report["failed_again_after_redrive"]) == (2, 1)


def test_a_letter_sent_back_by_an_earlier_run_is_not_sent_again_unless_asked() -> None:
    from schemas import decode_redrive, encode_redrive

    sent = letter(3, origin=30).redriven_at(datetime(2026, 12, 1, tzinfo=UTC))
    assert sent.letter == "touchpoints-dlq:0:3" and sent.origin == "touchpoints:2:30"
    recorded = decode_redrive(encode_redrive(sent))  # as the next run reads it
    for again, expected in ((False, "sent_before"), (True, "redriven")):
        plan = RedrivePlan(frozenset({"touchpoints"}), remembered_from_ms=0, again=again)
        plan.remember(recorded)
        verdicts = [
            plan.take(letter(3, origin=30)),  # the letter itself
            plan.take(letter(4, origin=30)),  # another letter of the same original
            plan.take(letter(5, origin=31)),  # its record failed again: a new original
        ]
        first = "repeated" if again else expected  # with --again, the original goes once
        assert verdicts == [expected, first, "redriven"], again


def test_the_summary_counts_letters_sent_back_before() -> None:
    summary = DeadLetterSummary()
    summary.add(letter(0), sent_back=True)
    summary.add(letter(1))
    assert summary.report()["touchpoints"]["sent_back_already"] == 1


@pytest.mark.parametrize("bad", [b"{}", b'{"letter": "dlq", "origin": "t:0:1", "ts": "x"}', b"["])
def test_a_malformed_redrive_record_is_refused(bad: bytes) -> None:
    from schemas import InvalidEvent, decode_redrive

    with pytest.raises(InvalidEvent):
        decode_redrive(bad)


@pytest.mark.parametrize(
    ("error", "applied"),
    [
        ("invalid: Expected `str` - at `$.page`", False),
        ("feature update failed: ResponseError: ERR overflow", False),
        ("decision failed: KeyError: 'x'", True),  # the features were updated first
        # its decision could not be recorded: after the update too
        ("decision record failed: ResponseError: WRONGTYPE key 2 of the decision", True),
        ("unknown", False),  # a letter with no reason: not known to be applied
        ("batch failed 3 times: RuntimeError: x", True),  # given up once it was applied
    ],
)
def test_a_failed_decision_or_a_given_up_batch_had_applied_its_event(
    error: str, applied: bool
) -> None:
    assert letter(error=error).applied_live is applied


def test_a_letter_cut_short_is_never_sent_back() -> None:
    from agents.letters import LETTER_MAX, SourceRecord, dead_letter

    small = SourceRecord("touchpoints", 0, 1, b"c", b"{")
    assert dead_letter(small, "invalid: x") == (b"{", [
        ("source-topic", b"touchpoints"), ("source-partition", b"0"),
        ("source-offset", b"1"), ("error", b"invalid: x")])  # fmt: skip
    big = SourceRecord("touchpoints", 0, 2, b"c", b"{" * (LETTER_MAX + 10))
    value, headers = dead_letter(big, "invalid: x")
    cut = DeadLetter.of("touchpoints-dlq", 0, 5, T0, b"c", value, headers)
    assert cut.truncated and not DeadLetter.of("dlq", 0, 6, T0, b"c", b"{", headers[:4]).truncated
    plan = RedrivePlan(frozenset({"touchpoints"}), remembered_from_ms=0)
    assert plan.take(cut) == "truncated"


def test_the_horizon_counts_from_when_the_worker_took_the_record_not_from_its_letter() -> None:
    """A batch retried through a long outage is dead-lettered long after its events were
    applied: counted from the letter, a re-drive near the horizon's end applied an event
    whose id Redis no longer remembered, twice."""
    from agents.letters import SourceRecord, dead_letter_headers

    hour = 3_600_000
    taken = SourceRecord("touchpoints", 2, 7, b"cust-1", b"{}", taken_ms=T0 - 3 * hour)
    headers = dead_letter_headers(taken, "batch failed 3 times: StoreUnavailable")
    late = DeadLetter.of("touchpoints-dlq", 0, 9, T0, b"cust-1", b"{}", headers)
    assert late.handled_ms == T0 - 3 * hour
    plan = RedrivePlan(frozenset({"touchpoints"}), remembered_from_ms=T0 - hour)
    assert plan.take(late) == "too_old"  # written within the horizon, taken before it
    assert plan.first_lettered(late) == T0 - 3 * hour  # what a re-drive's header carries
    older = DeadLetter.of("touchpoints-dlq", 0, 10, T0, b"cust-1", b"{}", headers[:-1])
    assert older.handled_ms is None and plan.take(older) == "redriven"  # no header: as before


def test_a_header_without_a_value_reads_as_unknown() -> None:
    """A hand-written letter may carry one; reading it used to crash the report."""
    letter = DeadLetter.of("touchpoints-dlq", 0, 0, 0, b"c1", b"{}", [("error", None)])  # type: ignore[list-item]
    assert letter.error == "unknown"


def test_an_error_a_batch_shares_is_shown_with_no_customer_of_the_report_named() -> None:
    """A batch given up writes one error on every letter; it named one customer, whose
    own letter masked it while the others' showed it in clear."""
    summary = DeadLetterSummary()
    shared = "batch failed 3 times: KeyError: 'cust-0017'"
    for n, customer in enumerate([b"cust-0001", b"cust-0017", b"cust-0042"]):
        summary.add(letter(offset=n, error=shared, key=customer))
    reasons = summary.report()["touchpoints"]["top_reasons"]
    assert reasons == [{"reason": "batch failed 3 times: KeyError: '<customer>'", "letters": 3}]


@pytest.mark.parametrize("at", range(988, 999))  # where the id starts: the cut keeps 999
def test_a_reason_cut_where_it_was_written_shows_no_part_of_a_customer_id(at: int) -> None:
    """A reason longer than a letter keeps is cut, perhaps part way through an id it
    quotes: the part left is masked as the whole would be."""
    error = "decision failed: " + "x" * (at - 28) + "KeyError: 'cust-000042' and more"
    assert error.index("cust-") == at
    record = SourceRecord("touchpoints", 0, 7, b"cust-000042", b"{}")
    headers = dead_letter_headers(record, error)
    read = DeadLetter.of("touchpoints-dlq", 0, 1, T0, b"cust-000042", b"{}", headers)
    assert len(read.error) == 1000 and read.error.endswith("\u2026")
    assert not {read.reason[-n - 1 : -1] for n in range(1, 12)} & {
        "cust-000042"[:n] for n in range(1, 12)
    }
    assert read.reason.endswith("'<customer>\u2026")
    assert read.reason.startswith("decision failed: xxx")


def test_a_reason_cut_by_an_older_worker_unmarked_is_masked_to_its_end() -> None:
    old = letter(error=("batch failed: " + "y" * 471 + "KeyError: 'cust-1'")[:500])
    assert len(old.error) == 500 and old.error.endswith("'cust")
    assert old.reason.endswith("KeyError: '<customer>")
    uncut = letter(error="invalid: cus")  # not cut: a short reason stays as written
    assert uncut.reason == "invalid: cus"


@pytest.mark.parametrize(
    ("customer", "error"),
    [  # a KeyError's message is a repr: holding a '"' too, it escapes the id's "'"
        ("o'brien@example.com", str(KeyError('no profile for "o\'brien@example.com"'))),
        # JSON as msgspec writes it: non-ASCII kept, '"' escaped
        ('Zoë "Z"', '{"customer_id":"Zoë \\"Z\\""}'),
        ('\xa0"', '["\xa0\\""]'),
    ],
)
def test_an_id_quoted_as_errors_and_json_quote_it_is_masked(customer: str, error: str) -> None:
    read = letter(error=f"decision failed: {error}", key=customer.encode())
    assert "<customer>" in read.reason
    assert customer not in read.reason
    assert customer.replace("'", "\\'") not in read.reason
    assert customer.replace('"', '\\"') not in read.reason


def test_a_letter_that_does_not_tell_its_original_is_not_sent_back() -> None:
    """Without its source partition or offset, two different records would read as one
    original (the second refused as repeated), and the re-drive record of the first could
    not name it: every later run, reading it back, was refused."""
    told = [("source-topic", b"touchpoints"), ("error", b"invalid: x")]
    plan = RedrivePlan(frozenset({"touchpoints"}), remembered_from_ms=0)
    verdicts = [
        plan.take(DeadLetter.of("touchpoints-dlq", 0, n, T0, b"c", b"{}", told + more))
        for n, more in enumerate([
            [], [("source-partition", b"0")], [("source-offset", b"9")],
            [("source-partition", b"0"), ("source-offset", b"9")],
        ])
    ]  # fmt: skip
    assert verdicts == ["unknown_origin"] * 3 + ["redriven"]


def test_an_earlier_runs_record_of_a_letter_without_origin_still_names_its_letter() -> None:
    """Earlier versions sent such letters back and recorded their original as
    ``topic:-1:-1``; reading that record refused every later run."""
    recorded = decode_redrive(
        b'{"letter":"touchpoints-dlq:0:3","origin":"touchpoints:-1:-1","ts":"2026-11-01T00:00:00Z"}'
    )
    assert recorded.origin_place is None
    plan = RedrivePlan(frozenset({"touchpoints"}), remembered_from_ms=0)
    plan.remember(recorded)
    told = [("source-topic", b"touchpoints"), ("source-partition", b"0"),
            ("source-offset", b"1"), ("error", b"x")]  # fmt: skip
    # its letter went back before; another letter is new to it
    sent = DeadLetter.of("touchpoints-dlq", 0, 3, T0, b"c", b"{}", told)
    other = DeadLetter.of("touchpoints-dlq", 0, 4, T0, b"c", b"{}", told)
    assert [plan.take(sent), plan.take(other)] == ["sent_before", "redriven"]


@pytest.mark.parametrize("garbled", ["²", "٣", "7 ", "-1", ""])
def test_a_number_header_that_is_no_ascii_number_reads_as_unknown(garbled: str) -> None:
    headers = [("source-topic", b"touchpoints"), ("source-partition", garbled.encode()),
               ("source-offset", b"9"), ("error", b"x")]  # fmt: skip
    read = DeadLetter.of("touchpoints-dlq", 0, 7, T0, b"c", b"{}", headers)
    assert (read.source_partition, read.source_offset) == (-1, 9)


def test_a_short_customer_id_garbles_no_reason() -> None:
    """Ids are 1 to 256 characters: a letter of customer "e" (or "7") had every other
    letter's reason masked wherever the letter stood, and the masks masked in turn:
    "invalid:<custom<customer>r>Exp<customer>ct<customer>d"."""
    summary = DeadLetterSummary()
    short = letter(0, key=b"e", error="invalid: amount over 10^12 - at `$.amount`")
    summary.add(short)
    summary.add(letter(1, key=b"cust-000011", origin=1,
                       error="invalid: Expected `str` - at `$.ts` for cust-000011"))  # fmt: skip
    summary.add(letter(2, key=b" ", origin=2, error="invalid: Expected `str` - at `$.page`"))
    reasons = {r["reason"] for r in summary.report()["touchpoints"]["top_reasons"]}
    assert reasons == {
        "invalid: amount over 10^12 - at `$.amount`",
        "invalid: Expected `str` - at `$.ts` for <customer>",
        "invalid: Expected `str` - at `$.page`",
    }, reasons
