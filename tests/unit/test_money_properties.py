"""Properties of money: purchases are counted in whole cents, rounded once, half up, as
written (docs/feature-store.md: "Amounts are rounded to the cent, half up as written").

Spend, average order value, value and the segments are sums of these cents, so a cent
lost or gained to a float's binary value (the float nearest 1.005 is a little below it)
or to an intermediate rounding would be a wrong figure for good. The oracle computes in
decimal, exactly, from the amount and rate as written.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, localcontext

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from feature_store.money import ONE_CURRENCY, Money, to_cents

MAX_AMOUNT = Decimal(10) ** 12  # the most a purchase may be, converted or not


def half_up_cents(*factors: str) -> int:
    """The oracle: the product of numbers as written, to the cent, half up, with no
    rounding before that."""
    with localcontext() as exact:
        exact.prec = 100
        product = Decimal(100)
        for factor in factors:
            product *= Decimal(factor)
        return int(product.to_integral_value(rounding=ROUND_HALF_UP))


@st.composite
def decimal_texts(draw: st.DrawFn, max_digits: int, max_scale: int) -> str:
    """A number as a person writes it: up to ``max_digits`` significant digits (15 at
    most, so that the float read from it keeps the value written) and ``max_scale``
    decimals."""
    digits = draw(st.sampled_from(range(1, max_digits + 1)))
    mantissa = draw(st.integers(10 ** (digits - 1), 10**digits - 1) | st.just(0))
    return str(Decimal(mantissa).scaleb(-draw(st.integers(0, max_scale))))


# up to 10^12 with up to 3 decimals (ties at half a cent among them)
amounts = decimal_texts(15, 3).filter(lambda text: Decimal(text) < MAX_AMOUNT)
# positive rates with up to 15 significant digits, from 10^-21 to 10^15
rates = decimal_texts(15, 21).filter(lambda text: Decimal(text) > 0)


@settings(max_examples=150, deadline=None)
@given(amounts, st.sampled_from(["EUR", "USD", "JPY"]))
@example("1.005", "EUR")
@example("0.125", "EUR")
@example("0.005", "EUR")
@example("999999999999.995", "EUR")
def test_an_amount_counts_its_cents_half_up_as_written(amount: str, currency: str) -> None:
    """An amount, read from JSON as a float, counts the cents it was written with, a half
    cent rounded up, whether one currency is assumed or it is in the base currency."""
    cents = half_up_cents(amount)
    assert to_cents(float(amount)) == cents
    assert ONE_CURRENCY.cents(float(amount), currency) == cents
    assert Money("EUR", {"USD": 0.5}).cents(float(amount), "EUR") == cents


@settings(max_examples=150, deadline=None)
@given(amounts, rates)
@example("0.01", "0.5")  # half a cent: up
@example("10.05", "0.5")
@example("402172743472.53", "0.644526250678249")  # 29 digits: once rounded to 28, a cent high
@example("875503191060.09", "0.5264733955839108")
def test_a_converted_amount_is_the_exact_product_rounded_half_up_once(
    amount: str, rate: str
) -> None:
    """An amount in a currency with a rate counts amount x rate in base cents, computed
    exactly and rounded once, half up (not first to 28 digits, nor the float product);
    beyond the most a purchase may be it cannot be counted (None), and a currency with no
    rate is never counted as the base one."""
    assume(Decimal(repr(float(rate))) == Decimal(rate))  # the float keeps the rate written
    money = Money.parse("eur", f"usd={rate}")
    cents = half_up_cents(amount, rate)
    got = money.cents(float(amount), "USD")
    if cents > MAX_AMOUNT * 100 * Decimal("1.000001"):
        assert got is None
    elif cents < MAX_AMOUNT * 100 * Decimal("0.999999"):  # not at the float's edge of it
        assert got == cents
    assert money.cents(float(amount), "GBP") is None
