"""Properties of the wire formats (DESIGN.md section 4) over generated records.

Producers write touchpoints and outcomes in many ways the contract allows (any id, any
UTC offset, optional fields left out or null); Moments writes decisions and erasures that
other systems, and Moments itself on a rebuild, read back. Whatever is valid must decode
as written, survive a round trip unchanged, and whatever is not must be refused with an
``InvalidEvent`` naming the field: the reason is what a dead letter and a 422 carry.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from schemas import (
    EVENT_TYPES,
    InvalidEvent,
    decode_erasure,
    decode_intervention,
    decode_next_best_offer,
    decode_outcome,
    decode_touchpoint,
    decode_touchpoints,
    encode_decision,
    encode_erasure,
    encode_outcome,
    encode_touchpoint,
)
from schemas.customer_ids import id_fault
from schemas.touchpoints import claimed_type
from tests.unit.event_strategies import (
    TIMEZONE_NAMES,
    TOUCHPOINT_DOCUMENTS,
    any_customer_ids,
    breaks_id_rules,
    customer_ids,
    erasures,
    interventions,
    next_best_offers,
    outcome_documents,
    touchpoint_documents,
)


def dumps(document: Any, ascii_only: bool = False) -> bytes:
    return json.dumps(document, ensure_ascii=ascii_only).encode()


# what an optional field left out decodes to (timezone: none)
DEFAULTS: dict[str, dict[str, Any]] = {
    "web_click": {"category": None, "product_id": None, "session_id": None},
    "call": {"duration_s": None, "sentiment": None, "queue": None, "agent_id": None},
    "email": {"campaign_id": None},
    "social_mention": {"reach": None},
    "purchase": {"categories": []},
    "survey": {},
    "consent": {},
}


def as_documented(document: dict[str, Any]) -> dict[str, Any]:
    """Each field's value once decoded, as the contract and the schemas' docstrings say:
    as written, but for the timestamp (its instant and offset), a currency (upper case),
    null categories (none), and a timezone that is no IANA name (none)."""
    expected = {**DEFAULTS[document["type"]], "timezone": None}
    for field, value in document.items():
        if field == "ts":
            value = datetime.fromisoformat(value)
        elif field == "currency":
            value = value.upper()
        elif field == "categories" and value is None:
            value = []
        elif field == "timezone" and value not in TIMEZONE_NAMES:
            value = None
        expected[field] = value
    del expected["type"]
    return expected


@pytest.mark.parametrize("kind", EVENT_TYPES)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_every_touchpoint_written_as_the_contract_says_decodes_as_written(
    kind: str, data: st.DataObject
) -> None:
    """DESIGN.md's JSON form of each of the seven types, with every optional field there,
    null or left out, decodes to its type with each field as written (ids code point for
    code point, the timestamp's instant and offset); escaped JSON is the same event."""
    document = data.draw(TOUCHPOINT_DOCUMENTS[kind])
    event = decode_touchpoint(dumps(document))
    assert event.kind == document["type"]
    for field, value in as_documented(document).items():
        assert getattr(event, field) == value, field
    assert event.ts.utcoffset() == datetime.fromisoformat(document["ts"]).utcoffset()
    reach = getattr(event, "reach", None)
    assert reach is None or type(reach) is int  # 1200.0 is kept as the whole number it is
    assert decode_touchpoint(dumps(document, ascii_only=True)) == event


# a record's strategy, encoder and decoder
Codec = tuple[st.SearchStrategy[Any], Callable[[Any], bytes], Callable[[bytes], Any]]
RECORDS: dict[str, Codec] = {
    "touchpoint": (
        touchpoint_documents.map(lambda d: decode_touchpoint(dumps(d))),
        encode_touchpoint,
        decode_touchpoint,
    ),
    "outcome": (
        outcome_documents.map(lambda d: decode_outcome(dumps(d))),
        encode_outcome,
        decode_outcome,
    ),
    "next_best_offer": (next_best_offers, encode_decision, decode_next_best_offer),
    "intervention": (interventions, encode_decision, decode_intervention),
    "erasure": (erasures, encode_erasure, decode_erasure),
}


@pytest.mark.parametrize("record", RECORDS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_every_record_decodes_to_what_was_encoded(record: str, data: st.DataObject) -> None:
    """encode then decode is the identity for touchpoints, outcomes, next-best offers,
    interventions and erasures (Kafka carries them; a rebuild reads them back), and the
    record encodes again to the same bytes (so UTC offsets and floats are kept too)."""
    strategy, encode, decode = RECORDS[record]
    original = data.draw(strategy)
    raw = encode(original)
    back = decode(raw)
    assert back == original
    assert encode(back) == raw


MISSING = object()  # the field left out
ANY = None  # any touchpoint type
# (type, field, a value the contract refuses there)
INVALID: list[tuple[str | None, str, Any]] = [
    (ANY, "event_id", ""),
    (ANY, "event_id", "e" * 257),
    (ANY, "event_id", MISSING),
    (ANY, "customer_id", "c" * 257),
    (ANY, "customer_id", 42),
    (ANY, "customer_id", " "),
    (ANY, "customer_id", "a\u202eb"),
    (ANY, "customer_id", MISSING),
    (ANY, "ts", "2026-11-23T14:05:00"),  # no offset
    (ANY, "ts", "2026-12-31T23:59:60Z"),
    (ANY, "ts", 1_700_000_000),
    (ANY, "ts", MISSING),
    ("web_click", "page", None),
    ("web_click", "category", "c" * 257),
    ("call", "status", "paused"),
    ("call", "sentiment", 1.01),
    ("call", "duration_s", -1),
    ("call", "queue", "q" * 257),
    ("call", "reason", MISSING),
    ("email", "action", "read"),
    ("social_mention", "sentiment", -2),
    ("social_mention", "reach", -1),
    ("social_mention", "reach", 12.5),
    ("social_mention", "reach", 10**10 + 1),
    ("social_mention", "reach", "12"),
    ("purchase", "amount", -0.01),
    ("purchase", "amount", 1e12 + 1),
    ("purchase", "amount", "12.50"),
    ("purchase", "currency", "EURO"),
    ("purchase", "currency", "EUR\n"),
    ("purchase", "order_id", ""),
    ("purchase", "categories", "books"),
    ("purchase", "categories", ["c" * 257]),
    ("purchase", "categories", ["c"] * 1001),
    ("survey", "score", 10.5),
    ("survey", "scale", "nps10"),
    ("consent", "granted", "yes"),
    ("consent", "channel", "fax"),
    ("outcome", "outcome", "liked"),
    ("outcome", "offer_id", ""),
    ("outcome", "customer_id", "a\x00b"),
    ("outcome", "decision_id", MISSING),
]


def document_of(kind: str | None) -> st.SearchStrategy[dict[str, Any]]:
    if kind == "outcome":
        return outcome_documents
    return touchpoint_documents if kind is ANY else TOUCHPOINT_DOCUMENTS[kind]


def broken(document: dict[str, Any], field: str, value: Any) -> dict[str, Any]:
    if value is MISSING:
        return {k: v for k, v in document.items() if k != field}
    return {**document, field: value}


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(INVALID), st.data())
def test_an_invalid_field_is_refused_naming_its_path(
    case: tuple[str | None, str, Any], data: st.DataObject
) -> None:
    """A valid record with one field made invalid (or left out) is refused with
    InvalidEvent, whose reason names the field (`$.field`, or the missing field) and, for
    a touchpoint, whose kind is the type it claims (a metric label)."""
    kind, field, value = case
    document = data.draw(document_of(kind))
    decode = decode_outcome if kind == "outcome" else decode_touchpoint
    with pytest.raises(InvalidEvent) as info:
        decode(dumps(broken(document, field, value)))
    reason = info.value.reason
    if value is MISSING:
        assert f"missing required field `{field}`" in reason, reason
    else:
        assert f"`$.{field}" in reason, reason
    if kind != "outcome":
        assert info.value.kind == document["type"]


@settings(max_examples=50, deadline=None)
@given(
    st.lists(touchpoint_documents, min_size=1, max_size=4),
    st.sampled_from([case for case in INVALID if case[0] != "outcome"]),
    st.data(),
)
def test_a_list_is_all_or_nothing_and_names_the_faulty_items_place(
    documents: list[dict[str, Any]], case: tuple[str | None, str, Any], data: st.DataObject
) -> None:
    """``decode_touchpoints`` gives the items decoded one by one; with one item invalid it
    refuses the whole list, naming the field at the item's place (`$[i].field`), whether
    msgspec or one of an event's own checks found it, and never a path at the root."""
    assert decode_touchpoints(dumps(documents)) == [decode_touchpoint(dumps(d)) for d in documents]
    kind, field, value = case
    index = data.draw(st.integers(0, len(documents)))
    bad = broken(data.draw(document_of(kind)), field, value)
    with pytest.raises(InvalidEvent) as info:
        decode_touchpoints(dumps([*documents[:index], bad, *documents[index:]]))
    reason = info.value.reason
    if value is MISSING:
        assert f"`{field}`" in reason and f"- at `$[{index}]`" in reason, reason
    else:
        assert f"`$[{index}].{field}" in reason, reason
    assert "`$." not in reason, reason


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = sorted({f for _, f, _ in INVALID} | {"type", "timezone", "platform", "score"})
DECODERS = (decode_touchpoint, decode_touchpoints, decode_outcome, decode_erasure)


@settings(max_examples=100, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        st.builds(
            lambda d, field, value: dumps({**d, field: value}),
            touchpoint_documents | outcome_documents,
            st.sampled_from(FIELDS),
            json_values,
        ),
        json_values.map(dumps),
    )
)
@example(b"")
@example(b"\xff\xfe")
@example(b'{"type": "purchase", "amount": 1e400}')
def test_no_input_raises_anything_but_invalid_event(raw: bytes) -> None:
    """Any bytes, and any JSON value in any field of a valid record, are either decoded
    (and then survive a round trip) or refused with InvalidEvent: never another exception,
    which would stop a worker or answer a 500."""
    assert claimed_type(raw) in (*EVENT_TYPES, "unknown")
    for decode in DECODERS:
        try:
            decode(raw)
        except InvalidEvent as exc:
            assert exc.reason
    try:
        event = decode_touchpoint(raw)
    except InvalidEvent:
        return
    assert decode_touchpoint(encode_touchpoint(event)) == event


@settings(max_examples=200, deadline=None)
@given(any_customer_ids)
@example(" ")
@example("\u3000\u00a0")
@example(".")
@example("...")
@example("a\u202bb")
@example("x\u2069")
@example("\u200b")
def test_customer_id_rules_agree_with_the_unicode_database(customer_id: str) -> None:
    """``id_fault`` refuses exactly the ids made only of spaces, a dot segment, and those
    holding a control character (Cc, the line and paragraph separators) or a
    bidirectional-text control, as the Unicode database classes them: ids that pooled
    unrelated customers or reordered an agent's screen, and no other."""
    assert (id_fault(customer_id) is not None) == breaks_id_rules(customer_id)


@settings(max_examples=60, deadline=None)
@given(
    any_customer_ids | customer_ids,
    touchpoint_documents,
    outcome_documents,
    st.booleans(),
)
def test_a_customer_id_is_kept_exactly_or_refused_by_name(
    customer_id: str,
    touchpoint: dict[str, Any],
    outcome: dict[str, Any],
    ascii_only: bool,
) -> None:
    """Touchpoints and outcomes keep a fit customer id code point for code point (no
    normalisation, case folding or trimming: it is who the customer is), and refuse an
    unfit one naming `$.customer_id`."""
    for document, decode in ((touchpoint, decode_touchpoint), (outcome, decode_outcome)):
        raw = dumps({**document, "customer_id": customer_id}, ascii_only)
        if breaks_id_rules(customer_id):
            with pytest.raises(InvalidEvent, match=r"`\$\.customer_id`"):
                decode(raw)
        else:
            assert decode(raw).customer_id == customer_id
