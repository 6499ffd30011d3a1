"""Numbers an option takes within bounds: an argparse ``type`` that refuses the rest as
the command line is read, naming the bounds (exit 2, before anything starts).

>>> events = bounded(int, 10_000, 200_000, "whole number")
>>> events("20000")
20000
>>> events("0")
Traceback (most recent call last):
argparse.ArgumentTypeError: 0 is out of bounds: from 10,000 to 200,000
>>> bounded(float, 1, 2_000, "number")("nan")
Traceback (most recent call last):
argparse.ArgumentTypeError: nan is out of bounds: from 1 to 2,000
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

Number = TypeVar("Number", int, float)


def bounds(low: float, high: float) -> str:
    """How an option's help and its refusal say its bounds.

    >>> bounds(0.5, 100_000)
    'from 0.5 to 100,000'
    """
    return f"from {low:,g} to {high:,g}"


def bounded(
    number: Callable[[str], Number], low: Number, high: Number, kind: str
) -> Callable[[str], Number]:
    """``number`` read from the command line, refused unless from ``low`` to ``high``
    (NaN too); ``kind`` names it when the text is no number at all."""

    def read(text: str) -> Number:
        value = number(text)  # ValueError: argparse says "invalid <kind> value: 'text'"
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is out of bounds: {bounds(low, high)}")
        return value

    read.__name__ = kind
    return read
