"""What a customer id may be, wherever one comes in to be acted on (touchpoints and
outcomes, on Kafka and over HTTP, and the recommendations path): 1 to 256 characters,
not only whitespace, and with no control character (C0 and C1, DEL: NUL, tabs, line
breaks and separators, terminal escapes) nor any of the bidirectional-text marks and
controls that reorder what a contact-centre screen shows. An id of a single space is a
producer's empty template: taken, it pooled unrelated customers into one profile. Nor
``.`` or ``..``: in a URL's path they are dot segments, which browsers and HTTP clients
resolve away however encoded, so that customer could be neither read nor erased.

Ids are otherwise compared exactly as sent, code point for code point: no Unicode
normalisation, case folding or trimming (``José`` in NFC and in NFD are two customers).

>>> [id_fault(i) for i in ("c-42", "José", "x🎉y")]
[None, None, None]
>>> id_fault(" "), id_fault("a\\x00b"), id_fault("\\u202eevil")
('is only whitespace', 'holds a control character (U+0000)', 'holds a control character (U+202E)')
>>> id_fault(".."), id_fault("..."), id_fault("a.b")
('is a path segment of its own (. or ..)', None, None)
"""

from __future__ import annotations

import re

# C0 controls, DEL, C1 controls; the line and paragraph separators; the bidirectional
# marks, embeddings, overrides and isolates
_CONTROL = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u061c\u202a-\u202e\u2066-\u2069]"
)

# The same rules as a regular expression, for the schemas /openapi.json publishes (its
# \Z becomes ECMA-262's $ there): not only whitespace (the characters str.isspace()
# takes that are not controls), not a dot segment, no control character.
ID_PATTERN = (
    r"^(?![ \u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+\Z)(?!\.\.?\Z)"
    r"[^\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u061c\u202a-\u202e\u2066-\u2069]*\Z"
)


def id_fault(customer_id: str) -> str | None:
    """What is wrong with ``customer_id`` (its length aside), or None when it is fit."""
    if customer_id.isspace():
        return "is only whitespace"
    if customer_id in (".", ".."):
        return "is a path segment of its own (. or ..)"
    found = _CONTROL.search(customer_id)
    if found is not None:
        return f"holds a control character (U+{ord(found.group()):04X})"
    return None


def check_customer_id(customer_id: str) -> None:
    """Raise :class:`ValueError` naming the fault (for a decoder's ``__post_init__``:
    msgspec reports it as a validation error)."""
    fault = id_fault(customer_id)
    if fault is not None:
        raise ValueError(f"customer_id {fault} - at `$.customer_id`")
