"""A decision's context as Redis keeps it: its JSON without the customer's id. The key it
is kept under is named by the keyed hash of the id, so the value must not name them
either (anyone who reads Redis, a replica or a backup would otherwise map each hash back
to its customer). Every reader asks by the customer's id, and gets it back in place.

A decision's JSON (:func:`schemas.encode_decision`) holds its id first, the customer's id
second (``{"decision_id":"d1","customer_id":"c1","ts":...``): the id is cut out of the
bytes and put back in the same place, so a context reads back byte for byte as written.
A context stored with the id (by an older Moments) reads back as it is.

>>> kept = stored(b'{"decision_id":"d1","customer_id":"c1","ts":1}', "c1")
>>> kept
b'{"decision_id":"d1","ts":1}'
>>> restored(kept.decode(), "c1")
'{"decision_id":"d1","customer_id":"c1","ts":1}'
>>> restored('{"decision_id":"d1","customer_id":"c1","ts":1}', "c1")  # an older one
'{"decision_id":"d1","customer_id":"c1","ts":1}'
"""

from __future__ import annotations

from typing import Any

import msgspec

_FIELD = ',"customer_id":'
_FIELD_BYTES = _FIELD.encode()
# the first field of every decision's JSON: contexts that start otherwise are not touched
_DECISIONS = ('{"decision_id":', '{"intervention_id":')
_encode = msgspec.json.Encoder().encode


def stored(context: bytes, customer_id: str) -> bytes:
    """``context`` without ``customer_id``, to keep in Redis. A context that does not
    hold the id as Moments encodes it is decoded and written again without it; one that
    is no JSON object is kept as it is."""
    named = _FIELD_BYTES + _encode(customer_id)
    # ',"' is never inside a JSON string (a quote in one is escaped), so this is the field
    at = context.find(named)
    if at >= 0:
        return context[:at] + context[at + len(named) :]
    try:
        decoded: Any = msgspec.json.decode(context)
    except msgspec.DecodeError:
        return context
    if isinstance(decoded, dict) and "customer_id" in decoded:
        del decoded["customer_id"]
        return _encode(decoded)
    return context


def restored(context: str, customer_id: str) -> str:
    """A stored context with ``customer_id`` back after the decision's id, where it was;
    one that holds a customer's id already (stored by an older Moments), or that is no
    decision's, as it is."""
    if not context.startswith(_DECISIONS) or _FIELD in context:
        return context
    at = _string_end(context, context.index(":") + 1)  # after the decision's id
    if at < 0:  # no string there: not written by Moments
        return context
    return context[:at] + _FIELD + _encode(customer_id).decode() + context[at:]


def _string_end(text: str, start: int) -> int:
    """Where the JSON string opening at ``start`` ends (after its closing quote: it may
    hold escaped quotes, and end in a comma), or -1 when none opens there.

    >>> _string_end('{"d":"a,","t":1}', 5), _string_end('{"d":7}', 5)
    (9, -1)
    """
    if text[start : start + 1] != '"':
        return -1
    at = start + 1
    while (quote := text.find('"', at)) >= 0:
        escapes = len(text[at:quote]) - len(text[at:quote].rstrip("\\"))
        if escapes % 2 == 0:
            return quote + 1
        at = quote + 1
    return -1
