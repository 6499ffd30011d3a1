"""The error raised for bad wire input, with a reason fit for a DLQ header or a 4xx body."""

from __future__ import annotations

import re
from typing import TypeVar

import msgspec

T = TypeVar("T")


class InvalidEvent(ValueError):
    """A record that cannot be decoded; ``reason`` names the field and the problem, and
    ``kind`` the event type it says it is, when that is one Moments knows."""

    def __init__(self, reason: str, kind: str = "unknown") -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


def record_value(value: bytes | None) -> bytes:
    """A Kafka record's value, or :class:`InvalidEvent` for a record without one (a
    tombstone, or a producer that sent none).

    >>> record_value(None)
    Traceback (most recent call last):
    ...
    schemas.errors.InvalidEvent: empty record (no value)
    """
    if value is None:
        raise InvalidEvent("empty record (no value)")
    return value


# a check of an event's own (its __post_init__) names its field from the event ("- at
# `$.score`"); in a list, msgspec adds the event's place after it ("- at `$[0]`")
_PLACED = re.compile(r"(.*) - at `\$(\.[^`]*)` - at `\$([^`]*)`", re.DOTALL)


def describe(exc: msgspec.DecodeError) -> str:
    """Turn msgspec's message into a reason: ``"Expected `int`, got `str` - at `$.reach`"``;
    a field one of an event's own checks names is placed within where the event is.

    >>> describe(msgspec.ValidationError("score 30 is outside 0..10 - at `$.score` - at `$[2]`"))
    'score 30 is outside 0..10 - at `$[2].score`'
    """
    text = str(exc)
    if isinstance(exc, msgspec.ValidationError):
        placed = _PLACED.fullmatch(text)
        return f"{placed[1]} - at `${placed[3]}{placed[2]}`" if placed else text
    return f"malformed JSON: {text}"


# a \uD800-\uDBFF escape (not itself escaped) without the \uDC00-\uDFFF one that completes it
_UNPAIRED = re.compile(
    rb"(?<!\\)(?:\\\\)*\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
)


def decode_wire(decoder: msgspec.json.Decoder[T], raw: bytes | str) -> T:
    """``decoder.decode(raw)``, where JSON nested deeper than msgspec can follow (about
    a thousand levels) is a :class:`msgspec.DecodeError` too, not a ``RecursionError``:
    one such record is bad input, to be refused or dead-lettered like any other. A
    string with half of a surrogate pair (cut within a character, as JavaScript can cut
    an emoji) is said to be so, where msgspec says the input was truncated.

    >>> decode_wire(msgspec.json.Decoder(), b"[" * 5000 + b"]" * 5000)
    Traceback (most recent call last):
    ...
    msgspec.DecodeError: JSON is nested too deeply
    >>> decode_wire(msgspec.json.Decoder(), b'{"note": "Love it \\\\ud83d"}')
    Traceback (most recent call last):
    ...
    msgspec.DecodeError: JSON is malformed: half of a UTF-16 surrogate pair, \ud83d (byte 18)
    """
    try:
        return decoder.decode(raw)
    except RecursionError:
        raise msgspec.DecodeError("JSON is nested too deeply") from None
    except msgspec.DecodeError as exc:
        if str(exc) != "Input data was truncated":
            raise
        data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
        half = _UNPAIRED.search(data)
        if half is None:
            raise
        at = half.end() - 6
        raise msgspec.DecodeError(
            f"JSON is malformed: half of a UTF-16 surrogate pair, "
            f"{data[at : half.end()].decode()} (byte {at})"
        ) from None
