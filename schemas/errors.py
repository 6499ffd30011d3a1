"""The error raised for bad wire input, with a reason fit for a DLQ header or a 4xx body."""

from __future__ import annotations

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


def describe(exc: msgspec.DecodeError) -> str:
    """Turn msgspec's message into a reason: ``"Expected `int`, got `str` - at `$.reach`"``."""
    text = str(exc)
    if isinstance(exc, msgspec.ValidationError):
        return text
    return f"malformed JSON: {text}"


def decode_wire(decoder: msgspec.json.Decoder[T], raw: bytes | str) -> T:
    """``decoder.decode(raw)``, where JSON nested deeper than msgspec can follow (about
    a thousand levels) is a :class:`msgspec.DecodeError` too, not a ``RecursionError``:
    one such record is bad input, to be refused or dead-lettered like any other.

    >>> decode_wire(msgspec.json.Decoder(), b"[" * 5000 + b"]" * 5000)
    Traceback (most recent call last):
    ...
    msgspec.DecodeError: JSON is nested too deeply
    """
    try:
        return decoder.decode(raw)
    except RecursionError:
        raise msgspec.DecodeError("JSON is nested too deeply") from None
