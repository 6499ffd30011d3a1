"""The error raised for bad wire input, with a reason fit for a DLQ header or a 4xx body."""

from __future__ import annotations

import msgspec


class InvalidEvent(ValueError):
    """A record that cannot be decoded; ``reason`` names the field and the problem."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def describe(exc: msgspec.DecodeError) -> str:
    """Turn msgspec's message into a reason: ``"Expected `int`, got `str` - at `$.reach`"``."""
    text = str(exc)
    if isinstance(exc, msgspec.ValidationError):
        return text
    return f"malformed JSON: {text}"
