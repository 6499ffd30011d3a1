"""Purchases in more than one currency: what a customer's spend is counted in.

By default Moments assumes one currency and sums amounts as they come. With a base
currency configured, a purchase in it counts as it is, one in a currency with a rate
counts converted, and one in any other currency is kept apart (its amount per currency),
never added to spend or value as if it were the base currency.

>>> money = Money.parse("EUR", "USD=0.92, JPY=0.0062")
>>> money.cents(10.0, "EUR"), money.cents(10.0, "USD"), money.cents(3000, "JPY")
(1000, 920, 1860)
>>> money.cents(5.0, "GBP") is None  # no rate: kept apart
True
>>> ONE_CURRENCY.cents(3000, "JPY")  # nothing configured: summed as it comes
300000
>>> ONE_CURRENCY.cents(0.125, "EUR"), ONE_CURRENCY.cents(1.005, "EUR")  # half a cent: up
(13, 101)
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Context, Decimal
from itertools import pairwise

from schemas.touchpoints import MAX_AMOUNT

_CODE = re.compile(r"[A-Z]{3}")
_RATE = re.compile(r"[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?|\.[0-9]+([eE][-+]?[0-9]+)?")
_CENT = Decimal(1)
# wide enough that an amount times a rate times 100 is exact (17 significant digits a float,
# and 3 for the 100): rounded once, half up, to the cent, never first to 28 digits
_EXACT = Context(prec=40)


def to_cents(amount: float) -> int:
    """``amount`` in hundredths, as written in decimal and rounded half up (the float
    nearest 1.005 is a little below it, and would round down).

    >>> to_cents(0.125), to_cents(0.135), to_cents(0.004), to_cents(999999999999.99)
    (13, 14, 0, 99999999999999)
    """
    return _half_up(Decimal(repr(amount)) * 100)


def _half_up(hundredths: Decimal) -> int:
    return int(hundredths.quantize(_CENT, rounding=ROUND_HALF_UP))


@dataclass(frozen=True, slots=True)
class Money:
    currency: str | None = None  # the base currency; None: one currency is assumed
    rates: Mapping[str, float] = field(default_factory=dict)  # base units per unit

    @classmethod
    def parse(cls, currency: str, rates: str) -> Money:
        """From ``MOMENTS_CURRENCY`` and ``MOMENTS_EXCHANGE_RATES`` (``USD=0.92,...``;
        codes in any case, as purchases take them); raises :class:`ValueError` naming
        what is wrong.

        >>> Money.parse("eur", "usd=0.92").rates
        {'USD': 0.92}
        >>> Money.parse("EUR", "USD=0,92")
        Traceback (most recent call last):
        ValueError: '92' is not CODE=rate: write rates with a decimal point (USD=0.92)
        >>> Money.parse("EUR", "USD=-1")
        Traceback (most recent call last):
        ValueError: the rate of USD must be a positive number
        >>> Money.parse("EUR", "USD=-")
        Traceback (most recent call last):
        ValueError: the rate of USD ('-') is not a number
        """
        currency = currency.strip().upper()
        if not currency:
            if rates.strip():
                raise ValueError("exchange rates need a base currency to convert to")
            return ONE_CURRENCY
        if not _CODE.fullmatch(currency):
            raise ValueError(f"{currency!r} is not a currency code such as EUR")
        items = [part.strip() for part in rates.split(",")]
        for before, item in pairwise(items):
            if "=" in before and item.isdigit():  # "USD=0,92": a decimal comma
                raise ValueError(
                    f"{item!r} is not CODE=rate: write rates with a decimal point (USD=0.92)"
                )
        parsed: dict[str, float] = {}
        for item in filter(None, items):
            code, sep, raw = (s.strip() for s in item.partition("="))
            code = code.upper()
            if not (sep and _CODE.fullmatch(code)):
                raise ValueError(f"{item!r} is not CODE=rate, such as USD=0.92")
            if code == currency:
                raise ValueError(f"{code} is the base currency: it takes no rate")
            if code in parsed:
                raise ValueError(f"{code} is given a rate twice")
            if raw.startswith("-") and _RATE.fullmatch(raw[1:]):  # a number, below 0
                raise ValueError(f"the rate of {code} must be a positive number")
            if not _RATE.fullmatch(raw):
                raise ValueError(f"the rate of {code} ({raw!r}) is not a number")
            rate = float(raw)
            if not (rate > 0 and math.isfinite(rate)):
                raise ValueError(f"the rate of {code} must be a positive number")
            parsed[code] = rate
        return cls(currency, parsed)

    def cents(self, amount: float, currency: str) -> int | None:
        """The amount in hundredths of the base currency (rounded half up); None when it
        cannot be converted (no rate, or beyond what a purchase may be once converted:
        the store's counters must not overflow)."""
        if self.currency is None or currency == self.currency:
            return to_cents(amount)
        rate = self.rates.get(currency)
        if rate is None or amount * rate > MAX_AMOUNT:
            return None
        return _half_up(
            _EXACT.multiply(_EXACT.multiply(Decimal(repr(amount)), Decimal(repr(rate))), 100)
        )


ONE_CURRENCY = Money()
