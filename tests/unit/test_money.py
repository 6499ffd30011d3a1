"""Purchases in more than one currency: converted by the configured rates, or kept apart;
never summed as if they were the base currency."""

from __future__ import annotations

import pytest

from feature_store.facts import touchpoint_fact
from feature_store.money import ONE_CURRENCY, Money
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


def test_with_no_base_currency_amounts_are_summed_as_they_come() -> None:
    state = apply_all([touchpoint_fact(purchase(30.0, 0, currency="JPY"), ONE_CURRENCY)])
    assert features_of(state).spend == 30.0 and features_of(state).spend_unconverted == {}


@pytest.mark.parametrize(
    ("currency", "rates", "fault"),
    [
        ("", "USD=0.9", "need a base currency"),
        ("euro", "", "not a currency code"),
        ("EUR", "USD", "is not CODE=rate"),
        ("EUR", "usd=0.9", "is not CODE=rate"),
        ("EUR", "USD=zero", "is not a number"),
        ("EUR", "USD=0", "positive number"),
        ("EUR", "USD=inf", "positive number"),
    ],
)
def test_settings_refuse_money_that_cannot_be_used(currency: str, rates: str, fault: str) -> None:
    env = {"MOMENTS_CURRENCY": currency, "MOMENTS_EXCHANGE_RATES": rates}
    with pytest.raises(SettingsError, match=fault):
        Settings.from_env(env)


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
