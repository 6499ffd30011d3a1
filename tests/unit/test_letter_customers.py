"""Whom a record names, for the screening of dead letters against erasures: every
``customer_id`` its text holds, not only the first. A record that is a JSON array of
touchpoints (a producer batching them into one record) is invalid and dead-lettered; with
an erased customer's item after another's, its letter (the whole array, their id in it)
was written after their erasure, because only the first item's id was looked up."""

from __future__ import annotations

import pytest

from agents.batch_result import BatchResult, FailedRecord
from agents.letter_customers import customers_named
from agents.letters import SourceRecord
from streams.dead_letters import DeadLetter

ARRAY = (
    b'[{"type": "web_click", "customer_id": "c-1"}, '
    b'{"type": "web_click", "customer_id": "c-erased"}]'
)


def test_every_item_of_an_array_names_its_customer() -> None:
    assert customers_named(b"c-1", ARRAY) == {"c-1", "c-erased"}
    assert customers_named(None, ARRAY) == {"c-1", "c-erased"}


def test_every_customer_id_of_a_record_cut_short_is_read() -> None:
    cut = b'[{"customer_id": "c-1"}, {"customer_id": "c-\\"2"}, {"customer_id": "c-'
    assert customers_named(None, cut) == {"c-1", 'c-"2'}


def test_a_customer_id_besides_the_one_at_the_top_is_read_too() -> None:
    """An object naming a customer in a nested item (or twice: msgspec keeps the last)."""
    nested = b'{"customer_id": "c-1", "attributes": {"customer_id": "c-erased"}}'
    twice = b'{"customer_id": "c-erased", "customer_id": "c-1"}'
    assert customers_named(None, nested) == {"c-1", "c-erased"}
    assert customers_named(None, twice) == {"c-1", "c-erased"}


def test_a_customer_id_under_a_key_spelt_with_an_escape_is_read_too() -> None:
    """Such a record naming ``customer_id`` twice is dead-lettered whole: the first id,
    under ``customer\\u005fid``, was not read, and an erased customer's letter written."""
    twice = b'{"customer\\u005fid": "c-erased", "customer_id": "c-1"}'
    assert customers_named(b"c-1", twice) == {"c-1", "c-erased"}
    nested = b'[{"\\u0063ustomer_id": 4711}, {"a": {"customer_id": "c-\\u00e9"}}]'
    assert customers_named(None, nested) == {"4711", "c-\u00e9"}


def test_a_customer_id_under_an_escaped_key_of_a_record_that_does_not_decode_is_read() -> None:
    """Both at once: a record cut short, keyed by another customer, naming an erased one
    under ``customer\\u005fid`` named only the key's customer, so its letter was written
    after the erasure (and ``moments dead-letters`` did not mask the id)."""
    cut = b'{"type": "web_click", "customer\\u005fid": "c-erased", "page": "/checkout?ca'
    assert customers_named(b"c-1", cut) == {"c-1", "c-erased"}
    nested = b'[{"\\u0063ustomer_id": 4711}, {"a": {"customer\\u005fid": "c-\\u00e9"}}, {"c'
    assert customers_named(None, nested) == {"4711", "c-\u00e9"}
    others = b'{"note": "a\\u0020b", "pa\\u0067e": "/x", "customer_id": "c-1", "cu'
    assert customers_named(None, others) == {"c-1"}
    letter = DeadLetter("touchpoints-dlq", 0, 1, 0, b"c-1", cut, "touchpoints", 0, 7,
                        "invalid: JSON is malformed, near c-erased")  # fmt: skip
    assert letter.reason == "invalid: JSON is malformed, near <customer>"


@pytest.mark.timeout(60)  # the old pattern took hours: it backtracked, cubic in the escapes
def test_a_record_cut_short_full_of_escapes_is_read_in_one_pass() -> None:
    """Screened on the event loop before every batch is sent: a record that did not
    decode, with a few thousand escaped quotes (20 KB), held a worker for hours (the
    key pattern could match the same escapes in many ways, from every quote)."""
    quotes = b'{"customer_id": "c-1", "page": "' + b'\\"' * 10_000
    assert customers_named(b"c-1", quotes) == {"c-1"}
    newline = b'{"customer_id": "c-1", "page": "' + b'\\"' * 10_000 + b"\\\n"
    assert customers_named(b"c-1", newline) == {"c-1"}
    keys = b'["x", {"customer\\u005fid": "c-erased", "a\\"b": 1, "t": "w\\"'
    assert customers_named(None, keys) == {"c-erased"}


def test_an_arrays_letter_naming_an_erased_customer_is_left_out() -> None:
    record = SourceRecord("touchpoints", 0, 7, b"c-1", ARRAY)
    result = BatchResult(results=[("unknown", "invalid")])
    result.dead_letters.append(FailedRecord(record, "invalid: expected an object", 0))
    result.leave_out_letters([result.dead_letters[0].customers], {"c-erased"})
    assert result.dead_letters == []
    assert result.results == [("unknown", "erased")]
