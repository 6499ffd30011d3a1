"""The customers a record names: its Kafka key, and every ``customer_id`` its value holds
(the one at its top, and each one its text holds besides: the items of a JSON array, a
nested object, a value cut short or malformed).

One reading for every side of the dead letters: the worker and the learner leave out
the letters of customers erased (nothing naming a customer is written after their
erasure), and ``moments dead-letters`` masks the ids and leaves erased customers'
letters where they are.

>>> sorted(customers_named(b"c-1", b'{"type": "web_click", "customer_id": "c-2", "pa'))
['c-1', 'c-2']
>>> sorted(customers_named(None, b'[{"customer_id": "c-1"}, {"customer_id": "c-2"}]'))
['c-1', 'c-2']
>>> customers_named(None, b"{not json"), customers_named(b"c-1", None)
(frozenset(), frozenset({'c-1'}))
"""

from __future__ import annotations

import json
import re

import msgspec

from schemas.errors import decode_wire


class _Named(msgspec.Struct):
    """The customer a record names, if it is a JSON object that names one."""

    customer_id: str | None = None


_named = msgspec.json.Decoder(_Named)
# a member's value as text may hold it: a JSON string, or a number
_VALUE = rb'("(?:[^"\\]|\\.)*"|-?[0-9][0-9.eE+-]*)'
# every customer_id a record's text holds, decoded or not
_NAMED_ANYHOW = re.compile(rb'"customer_id"\s*:\s*' + _VALUE)
# every key spelt with an escape ("customer\u005fid") and its value, decoded or not
# (each string of the text is matched once, whole, from its opening quote: a string
# cut short runs to the end; one way to match each byte, so the scan is linear)
_STRING = rb'"([^"\\]*(?:\\.[^"\\]*)*)(?:"(?:\s*:\s*' + _VALUE + rb")?|\\?\Z)"
_ESCAPED_KEY = re.compile(_STRING, re.DOTALL)  # (an escaped newline too)


def named_anyhow(value: bytes) -> list[str]:
    """Every customer id a record's text names (``"customer_id": <string or number>``),
    in order, read from its text whether or not it decodes: each item of an array,
    a nested object's, one in a record cut short.

    >>> named_anyhow(b'{"type": "web_click", "customer_id": "c-\\\\"7", "page": "/a')
    ['c-"7']
    >>> named_anyhow(b'{"customer_id": 4711}'), named_anyhow(b"{not json")
    (['4711'], [])
    >>> named_anyhow(b'[{"customer_id": "c-1"}, {"customer_id": "c-2"}, {"customer_id": "c')
    ['c-1', 'c-2']
    """
    found = (_read(match.group(1)) for match in _NAMED_ANYHOW.finditer(value))
    return [named for named in found if named is not None]


def named_escaped(value: bytes) -> list[str]:
    """Every customer id of a record whose text holds an escape, read as JSON: a key
    spelt with one (``"customer\\u005fid"``) is ``customer_id`` to a JSON reader, which
    :func:`named_anyhow` does not see (such a record naming it twice is dead-lettered:
    :mod:`schemas.duplicate_keys`). A record that is not JSON (cut short, say) has each
    such key read from its text, as :func:`named_anyhow` reads the others. None for a
    record with no escape.

    >>> named_escaped(b'{"customer\\\\u005fid": "c-erased", "customer_id": "c-1"}')
    ['c-erased', 'c-1']
    >>> named_escaped(b'{"customer\\\\u005fid": "c-erased", "type": "web_cl')
    ['c-erased']
    """
    if b"\\" not in value:
        return []
    found: list[str] = []

    def pairs(members: list[tuple[str, object]]) -> None:
        for name, named in members:
            if name == "customer_id" and type(named) in (str, int, float):  # (not a bool)
                found.append(str(named))

    try:
        json.loads(value, object_pairs_hook=pairs)
    except (ValueError, RecursionError):  # not JSON, or nested too deep: read its text
        return [named for name, named in _escaped_members(value) if name == "customer_id"]
    return found


def _escaped_members(value: bytes) -> list[tuple[str, str]]:
    """Each key spelt with an escape in a record's text, decoded, with its value (a
    string or a number), whether or not the text decodes."""
    members = []
    for match in _ESCAPED_KEY.finditer(value):
        if match.group(2) is None or b"\\" not in match.group(1):
            continue  # a string that is no key, or a key spelt without an escape
        name, named = _read(b'"' + match.group(1) + b'"'), _read(match.group(2))
        if name is not None and named is not None:
            members.append((name, named))
    return members


def _read(token: bytes) -> str | None:
    """A value matched in a record's text: a JSON string decoded, a number as written;
    None for a string that does not decode (cut short within an escape, say)."""
    try:
        return str(json.loads(token)) if token.startswith(b'"') else token.decode()
    except ValueError:
        return None


def customers_named(key: bytes | None, value: bytes | None) -> frozenset[str]:
    """The customer ids a record of ``key`` and ``value`` names: its key (a producer may
    key a record by something else, or not at all), the ``customer_id`` of its value,
    and every other one its text holds (a record is screened against erasures by all
    of them: an array's first item alone let the letter of an erased customer's second
    one be written).

    >>> customers_named(None, b'{"customer_id": "c-7", "ts": 1}')
    frozenset({'c-7'})
    """
    found = {key.decode("utf-8", "replace")} if key else set()
    try:
        top = decode_wire(_named, value or b"").customer_id
    except msgspec.DecodeError:  # not a JSON object, or its customer_id is not a string
        top = None
    for named in (top, *named_anyhow(value or b""), *named_escaped(value or b"")):
        if named and _storable(named):  # a lone surrogate (a legal JSON escape) names no one
            found.add(named)
    return frozenset(found)


def _storable(customer_id: str) -> bool:
    """Whether ``customer_id`` could be a customer's: it encodes as UTF-8 (the store's
    keys are hashed from its UTF-8 bytes; one that does not is no customer's).

    >>> _storable("c-1"), _storable("\\ud800")
    (True, False)
    """
    try:
        customer_id.encode()
    except UnicodeEncodeError:
        return False
    return True
