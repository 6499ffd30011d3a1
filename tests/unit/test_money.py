"""Purchases in more than one currency: converted by the configured rates, or kept apart;
never summed as if they were the base currency."""

from __future__ import annotations

import pytest

from feature_store.facts import touchpoint_fact
from feature_store.money import ONE_CURRENCY, Money
from feature_store.reference import CustomerState
from feature_store.rooms import CURRENCY_ROOM, UNCONVERTED_CURRENCIES
from streams.settings import Settings, SettingsError
from tests.unit.factories import apply_all, at, features_of, purchase

EUR = Money.parse("EUR", "USD=0.5")


def test_a_purchase_without_a_rate_is_kept_apart_from_spend_and_value() -> None:
    """3000 JPY and 10 EUR made a spend of 3010 and a "model" customer."""
    state = apply_all([
        touchpoint_fact(purchase(3000.0, at(days=-3), currency="JPY"), EUR),
        touchpoint_fact(purchase(10.0, at(days=-2)), EUR),
        touchpoint_fact(purchase(20.0, at(days=-1), currency="USD"), EUR),
    ])  # fmt: skip
    features = features_of(state)
    assert (features.purchases, features.spend, features.spend_365d) == (3, 20.0, 20.0)
    assert features.spend_unconverted == {"JPY": 3000.0}
    assert features.average_order_value == 10.0  # of the two counted in spend
    assert features.value == 80.0  # 20 over a quarter of tenure


def test_a_customer_keeps_the_spend_of_so_many_currencies_without_a_rate_at_most() -> None:
    """A producer sending a country code or a typo as the currency made a profile field
    per code, for good (17,576 codes: 17,585 fields, 1.39 MB, a decision's read 77 times
    as slow). Past CURRENCY_ROOM currencies a new one's purchase is counted as unconverted
    only; the currencies kept still add up."""
    codes = [f"Q{a}{b}" for a in "ABCDEF" for b in "ABCDEF"][: CURRENCY_ROOM + 10]
    buys = [touchpoint_fact(purchase(1.0, at(days=-3), currency=c), EUR) for c in codes]
    buys += [touchpoint_fact(purchase(2.0, at(days=-1), currency=codes[0]), EUR),
             touchpoint_fact(purchase(10.0, at(days=-1)), EUR)]  # fmt: skip
    state = apply_all(buys)
    features = features_of(state)
    assert features.spend_unconverted == {c: 1.0 for c in codes[:CURRENCY_ROOM]} | {codes[0]: 3.0}
    assert state.profile[UNCONVERTED_CURRENCIES] == str(CURRENCY_ROOM)
    assert state.profile["purchases_unconverted"] == str(len(codes) + 1)  # every one
    assert (features.purchases, features.spend, features.average_order_value) == (
        len(codes) + 2, 10.0, 10.0
    )  # fmt: skip


def test_a_profile_from_before_the_currency_count_counts_its_currencies_once() -> None:
    """A profile written before the count holds currencies uncounted: the first new one
    counts them, so it keeps no more than it holds when that is past the room."""
    codes = [f"Q{a}{b}" for a in "ABCDEF" for b in "ABCDEF"][: CURRENCY_ROOM + 4]
    older = {f"spend_unconverted:{c}": "100" for c in codes} | {"n": "1"}
    state = CustomerState(profile=older)
    buys = [touchpoint_fact(purchase(5.0, at(days=-1), currency=c), EUR) for c in ("ZZZ", "QAA")]
    apply_all(buys, state)
    assert state.profile[UNCONVERTED_CURRENCIES] == str(CURRENCY_ROOM + 4)
    assert "spend_unconverted:ZZZ" not in state.profile
    assert state.profile["spend_unconverted:QAA"] == "600"


def test_with_no_base_currency_amounts_are_summed_as_they_come() -> None:
    state = apply_all([touchpoint_fact(purchase(30.0, 0, currency="JPY"), ONE_CURRENCY)])
    assert features_of(state).spend == 30.0 and features_of(state).spend_unconverted == {}


@pytest.mark.parametrize(
    ("currency", "rates", "fault"),
    [
        ("", "USD=0.9", "need a base currency"),
        ("euro", "", "not a currency code"),
        ("EUR", "USD", "is not CODE=rate"),
        ("EUR", "US=0.9", "is not CODE=rate"),
        ("EUR", "USD=zero", "is not a number"),
        ("EUR", "USD=0", "positive number"),
        ("EUR", "USD=inf", "is not a number"),
        ("EUR", "USD=1_000", "is not a number"),
        ("EUR", "USD=0x10", "is not a number"),
        ("EUR", "USD=0,92", "decimal point"),  # a decimal comma: not "USD=0" and "92"
        ("EUR", "GBP=1.17,USD=0,92", "decimal point"),
        ("EUR", "EUR=1.1", "base currency"),  # never used: a mistake
        ("EUR", "USD=1,usd=2", "twice"),  # which one was meant?
    ],
)
def test_settings_refuse_money_that_cannot_be_used(currency: str, rates: str, fault: str) -> None:
    env = {"MOMENTS_CURRENCY": currency, "MOMENTS_EXCHANGE_RATES": rates}
    with pytest.raises(SettingsError, match=fault):
        Settings.from_env(env)


def test_currency_codes_are_taken_in_any_case_as_purchases_take_them() -> None:
    settings = Settings.from_env({"MOMENTS_CURRENCY": "eur", "MOMENTS_EXCHANGE_RATES": "usd=0.9"})
    assert settings.money == Money("EUR", {"USD": 0.9})


@pytest.mark.parametrize(
    ("amount", "cents"),
    [(0.125, 13), (0.135, 14), (1.005, 101), (0.005, 1), (0.004, 0), (19.99, 1999),
     (999999999999.99, 99999999999999)],
)  # fmt: skip
def test_amounts_round_to_the_cent_half_up_as_written(amount: float, cents: int) -> None:
    """The float nearest 1.005 is a little below it: it rounded to 100 cents, and 0.125
    to 12 (half to even)."""
    assert ONE_CURRENCY.cents(amount, "EUR") == cents
    assert Money("EUR", {}).cents(amount, "EUR") == cents


def test_a_converted_amount_rounds_half_up_as_written() -> None:
    money = Money.parse("EUR", "USD=0.5")
    assert money.cents(0.01, "USD") == 1  # half a cent: up (0.005 rounded to even gave 0)
    assert money.cents(10.05, "USD") == 503
    # exactly 25,921,089,047,533.4999999999999970 hundredths: 28 digits rounded it to .5
    # before the cent was, and it came to 534
    many_digits = Money.parse("EUR", "USD=0.644526250678249")
    assert many_digits.cents(402172743472.53, "USD") == 25921089047533


def test_settings_give_the_store_its_money() -> None:
    settings = Settings.from_env({"MOMENTS_CURRENCY": "EUR", "MOMENTS_EXCHANGE_RATES": "USD=0.92,"})
    assert settings.money == Money("EUR", {"USD": 0.92})
    assert Settings().money is ONE_CURRENCY


def test_a_conversion_beyond_what_a_purchase_may_be_is_kept_apart() -> None:
    """A large rate multiplied the amount cap, and four such purchases overflowed the
    store's 64-bit counters part-way through an event."""
    dong = Money.parse("VND", "USD=25000")
    assert dong.cents(1e12, "USD") is None
    assert dong.cents(40_000_000.0, "USD") == 100_000_000_000_000  # 10^12 dong: still counted
