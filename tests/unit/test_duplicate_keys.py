"""A touchpoint or outcome naming a key twice is refused wherever it comes in (the API's
422, the worker's and the offer learner's dead letter): it goes on as sent, and readers of
JSON differ on which of the two values counts (RFC 8259 section 4)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import InvalidEvent, decode_outcome, decode_touchpoint, decode_touchpoints
from schemas.duplicate_keys import duplicate_key

HEAD = '"type": "web_click", "event_id": "e1", "ts": "2026-01-01T00:00:00Z", "page": "/"'
OUTCOME = ('"decision_id": "d1", "offer_id": "o1", "outcome": "accepted",'
           ' "ts": "2026-01-01T00:00:00Z"')  # fmt: skip


def obj(*members: str) -> str:
    """A JSON object of ``members``, written as given (keys given twice and all)."""
    return "{" + ", ".join(members) + "}"


@pytest.mark.parametrize(
    ("raw", "path"),
    [  # the first id refused by the id rules, the last taken: both went to Kafka as sent
        (obj(HEAD, '"customer_id": "victim\\u0000\\u202e", "customer_id": "decoy"'),
         "$.customer_id"),
        (obj('"customer_id": "a"', HEAD, '"customer_id": "a"'), "$.customer_id"),
        (obj(HEAD, '"customer_id": "c", "customer\\u005fid": "d"'), "$.customer_id"),
        (obj(HEAD, '"customer_id": "c", "extra": [{"k": 1}, {"k": 2, "k": 3}]'),
         "$.extra[1].k"),
        (obj(HEAD, '"customer_id": "c", "\\"odd\\"": 1, "\\"odd\\"": 2'), '$["\\"odd\\""]'),
    ],
)  # fmt: skip
def test_a_touchpoint_naming_a_key_twice_is_refused_naming_where(raw: str, path: str) -> None:
    with pytest.raises(InvalidEvent) as refused:
        decode_touchpoint(raw.encode())
    assert refused.value.reason.endswith(f"- at `{path}`"), refused.value.reason
    assert "key given twice" in refused.value.reason
    assert refused.value.kind == "web_click"  # counted under the type it names


def test_a_consent_granted_and_withdrawn_at_once_is_refused() -> None:
    """Moments took the grant (the last); a reader taking the first sees a withdrawal."""
    raw = obj('"type": "consent", "event_id": "e1", "customer_id": "c1"',
              '"ts": "2026-01-01T00:00:00Z", "channel": "email", "granted": false',
              '"granted": true')  # fmt: skip
    with pytest.raises(InvalidEvent, match=r"key given twice .* - at `\$\.granted`"):
        decode_touchpoint(raw)


def test_an_outcome_naming_a_key_twice_is_refused() -> None:
    raw = obj(OUTCOME, '"customer_id": "c\\u0000x", "customer_id": "decoy"')
    with pytest.raises(InvalidEvent, match=r"key given twice .* - at `\$\.customer_id`"):
        decode_outcome(raw.encode())


def test_a_list_names_the_element_naming_a_key_twice() -> None:
    one = obj(HEAD, '"customer_id": "c"')
    twice = obj(HEAD, '"customer_id": "c", "page": "/x"')
    with pytest.raises(InvalidEvent, match=r"- at `\$\[1\]\.page`"):
        decode_touchpoints(f"[{one}, {twice}]")


@pytest.mark.parametrize(
    "extra",
    [
        ', "category": "page"',  # a value written as a key is
        ', "session_id": "c1"',  # a value written twice
        ', "a": {"id": 1}, "b": {"id": 2, "c": {"id": 3}}',  # one name in several objects
        ', "note": "say \\"page\\": twice", "page2": "\\"page\\""',  # quotes within strings
        ', "note": "Jos\\u00e9", "other": "Jos\\u00e9"',  # escapes in values
        ', "deep": ' + "[" * 900 + "1" + "]" * 900,  # deeper than Python's parser follows
    ],
)  # fmt: skip
def test_a_touchpoint_naming_each_key_once_is_taken(extra: str) -> None:
    raw = obj(HEAD, '"customer_id": "c1"' + extra)
    assert decode_touchpoint(raw.encode()).customer_id == "c1"


def test_a_key_given_twice_deeper_than_pythons_parser_follows_is_still_found() -> None:
    """msgspec follows a few levels more than ``json.loads`` (which the check uses when a
    key's text comes twice): at the deepest msgspec takes, the key is still found."""

    def record(depth: int, last: str = "") -> str:
        deep = "[" * depth + "]" * depth
        return obj(HEAD, '"customer_id": "victim", "deep": ' + deep + last)

    depth = next(d for d in range(1000, 0, -1) if _taken(record(d)))
    with pytest.raises(InvalidEvent, match=r"- at `\$\.customer_id`"):
        decode_touchpoint(record(depth, ', "customer_id": "decoy"'))


def _taken(raw: str) -> bool:
    try:
        decode_touchpoint(raw)
    except InvalidEvent:
        return False
    return True


def test_a_long_odd_key_is_shown_cut_short() -> None:
    key = "x y" * 100
    reason = duplicate_key(json.dumps({"a": 1}).replace("}", f', "{key}": 1, "{key}": 2}}'))
    assert reason is not None and len(reason) < 160 and '..."]`' in reason, reason


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(max_size=4), json_values, max_size=6), st.booleans())
def test_json_written_by_a_serialiser_never_names_a_key_twice(
    document: dict[str, Any], ascii_only: bool
) -> None:
    """Whatever a dict serialises to (escapes, nesting, repeated strings) is taken."""
    assert duplicate_key(json.dumps(document, ensure_ascii=ascii_only)) is None


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(max_size=4), json_values, min_size=1, max_size=6), st.data())
def test_any_key_written_again_is_found(document: dict[str, Any], data: st.DataObject) -> None:
    """A key of the object written a second time, with another value, is found."""
    key = data.draw(st.sampled_from(sorted(document)))
    text = json.dumps(document, ensure_ascii=data.draw(st.booleans()))
    twice = text[:-1] + ", " + json.dumps(key) + ": " + json.dumps(data.draw(json_values)) + "}"
    reason = duplicate_key(twice)
    assert reason is not None and "key given twice" in reason
