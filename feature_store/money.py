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
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from schemas.touchpoints import MAX_AMOUNT

_CODE = re.compile(r"[A-Z]{3}")


@dataclass(frozen=True, slots=True)
class Money:
    currency: str | None = None  # the base currency; None: one currency is assumed
    rates: Mapping[str, float] = field(default_factory=dict)  # base units per unit

    @classmethod
    def parse(cls, currency: str, rates: str) -> Money:
        """From ``MOMENTS_CURRENCY`` and ``MOMENTS_EXCHANGE_RATES`` (``USD=0.92,...``);
        raises :class:`ValueError` naming what is wrong."""
        currency = currency.strip()
        if not currency:
            if rates.strip():
                raise ValueError("exchange rates need a base currency to convert to")
            return ONE_CURRENCY
        if not _CODE.fullmatch(currency):
            raise ValueError(f"{currency!r} is not a currency code such as EUR")
        parsed: dict[str, float] = {}
        for item in filter(None, (part.strip() for part in rates.split(","))):
            code, sep, raw = (s.strip() for s in item.partition("="))
            if not (sep and _CODE.fullmatch(code)):
                raise ValueError(f"{item!r} is not CODE=rate, such as USD=0.92")
            try:
                rate = float(raw)
            except ValueError:
                raise ValueError(f"the rate of {code} ({raw!r}) is not a number") from None
            if not (rate > 0 and math.isfinite(rate)):
                raise ValueError(f"the rate of {code} must be a positive number")
            parsed[code] = rate
        return cls(currency, parsed)

    def cents(self, amount: float, currency: str) -> int | None:
        """The amount in hundredths of the base currency; None when it cannot be
        converted (no rate, or beyond what a purchase may be: the store's counters must
        not overflow)."""
        if self.currency is None or currency == self.currency:
            return round(amount * 100)
        rate = self.rates.get(currency)
        if rate is None or amount * rate > MAX_AMOUNT:
            return None
        return round(amount * rate * 100)


ONE_CURRENCY = Money()
