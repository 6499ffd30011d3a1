"""JSON whose objects name a key twice, which Moments refuses wherever a record comes in.

RFC 8259 (section 4) leaves such an object's meaning to each reader: msgspec takes the
last value, other readers the first, some refuse it. A touchpoint or outcome goes on as
sent (to Kafka, to the dead-letter topics, to other consumers of the contract topics), so
one naming ``customer_id`` or ``granted`` twice would mean one customer or consent to
Moments and another to a reader taking the first.

Most records are told apart cheaply, by splitting them at their quotes: when no string is
written twice, or no key's text is, no key can come twice. Only the others are parsed
again, and only one found to name a key twice is read token by token, for the path to it.

>>> duplicate_key(b'{"type": "consent", "granted": false, "granted": true}')
'key given twice (JSON readers differ on which one counts) - at `$.granted`'
>>> duplicate_key(b'{"a": {"k": 1}, "b": [{"k": 1}, {"k": 2, "k": 3}]}')
'key given twice (JSON readers differ on which one counts) - at `$.b[1].k`'
>>> duplicate_key(b'{"customer_id": "c", "customer\\\\u005fid": "d"}')
'key given twice (JSON readers differ on which one counts) - at `$.customer_id`'
>>> duplicate_key(b'{"page": "page", "category": "page"}') is None
True
"""

from __future__ import annotations

import json
import re

# A string (with the colon after it if it is a key), or a bracket or comma outside one.
# On JSON a decoder took, the strings found from the start are the document's own: no
# quote is outside a string, so none is taken for one from inside another.
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"(?:[ \t\r\n]*:)?|[{}\[\],]')
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
TWICE = "key given twice (JSON readers differ on which one counts)"
SHOWN = 64  # characters of an odd key's JSON shown in a reason, at most


def duplicate_key(raw: bytes | str) -> str | None:
    """Where ``raw``, JSON a decoder took, first names a key twice in one object (as a
    reason: ``... - at `$.customer_id```), or None when no object does. Keys are compared
    as decoded: ``"a"`` and ``"\\u0061"`` are the same key."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if b'\\"' not in data and not _key_text_repeats(data):
        return None
    try:  # at C speed, the first time a key comes again
        json.loads(data, object_pairs_hook=_refuse_repeats)
    except _Repeat:
        pass
    except RecursionError:  # nested deeper than Python's parser follows: tokens only
        pass
    else:
        return None
    return _first_repeat(data)


def _key_text_repeats(data: bytes) -> bool:
    """Whether a key's text comes twice in ``data`` (in one object or in two), escapes
    read; for JSON whose quotes all delimit strings (no ``\\"`` in it)."""
    pieces = data.split(b'"')  # strings at odd places, what is between them at even
    strings = pieces[1::2]
    if len(set(strings)) == len(strings) and b"\\" not in data:
        return False  # the common case: no string at all written twice
    keys = [
        _unescaped(text)
        for text, after in zip(strings, pieces[2::2], strict=False)
        if after.lstrip(b" \t\r\n")[:1] == b":"
    ]
    return len(set(keys)) != len(keys)


def _unescaped(text: bytes) -> bytes:
    """A JSON string's content with its escapes read, as UTF-8."""
    if b"\\" not in text:
        return text
    return str(json.loads(b'"' + text + b'"')).encode("utf-8", "surrogatepass")


class _Repeat(Exception):
    """A key came twice."""


def _refuse_repeats(pairs: list[tuple[str, object]]) -> None:
    """``json.loads``'s ``object_pairs_hook``: raise :class:`_Repeat` at a key given twice."""
    if len({name for name, _ in pairs}) != len(pairs):
        raise _Repeat


def _first_repeat(data: bytes) -> str | None:
    """:func:`duplicate_key`, token by token (no recursion: any depth)."""
    # per open object or array: its path, then the keys seen (an object) or its index
    frames: list[tuple[str, set[str] | None, list[int]]] = []
    last_key = ""
    for match in _TOKEN.finditer(data):
        token = match.group()
        first = token[:1]
        if first == b'"':
            if token[-1:] != b":":
                continue  # a value
            quoted = token[:-1].rstrip(b" \t\r\n")
            key = json.loads(quoted) if b"\\" in quoted else quoted[1:-1].decode()
            path, seen, _ = frames[-1]
            assert seen is not None  # a key is in an object
            if key in seen:
                return f"{TWICE} - at `{path}{_step(key)}`"
            seen.add(key)
            last_key = key
        elif first in (b"{", b"["):
            if not frames:
                path = "$"
            else:
                outer, seen, index = frames[-1]
                path = outer + (_step(last_key) if seen is not None else f"[{index[0]}]")
            frames.append((path, set() if first == b"{" else None, [0]))
        elif first == b",":
            if frames and frames[-1][1] is None:
                frames[-1][2][0] += 1
        elif frames:
            frames.pop()
    return None


def _step(key: str) -> str:
    """``key`` as a step of a path: ``.name``, or its JSON in brackets (cut short)."""
    if _NAME.match(key):
        return f".{key}"
    shown = json.dumps(key)
    if len(shown) > SHOWN:
        shown = shown[: SHOWN - 4] + '..."'
    return f"[{shown}]"
