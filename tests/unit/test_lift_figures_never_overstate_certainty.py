"""Figures of ``moments evaluate`` and ``moments lift`` that must never claim more
certainty than the data hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from streams.control_lift import PERMUTATIONS, ControlLift, LiftPeriod
from streams.estimators import lift
from streams.proportions import difference


def test_the_lift_interval_is_never_narrower_than_of_independent_moments() -> None:
    """Customers whose moments convert more evenly than chance (each converts exactly 2
    of 10) tell apart no more than as many independent moments: the design effect is
    at least 1, so the interval is at least as wide as Newcombe's over the moments."""
    treated = {f"t{i}": [10, 3] for i in range(50)}
    control = {f"c{i}": [10, 2] for i in range(50)}
    low, high = lift(treated, control, resamples=20, seed=1)["ci95"]
    _, (naive_low, naive_high), _ = difference(150, 500, 100, 500)
    assert low <= naive_low and high >= naive_high, ((low, high), (naive_low, naive_high))


def test_the_revenue_p_value_of_a_permutation_test_is_never_zero() -> None:
    """With :data:`PERMUTATIONS` reassignments the smallest p-value the test can give is
    1 / (PERMUTATIONS + 1): a report of 0 would claim a certainty no sample gives."""
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    found = ControlLift(
        LiftPeriod(t0, t0 + timedelta(days=30), timedelta(days=7)), t0 + timedelta(days=60)
    )
    for n in range(200):
        control = n % 2 == 0
        name = f"c{n}"
        found.decision(name, t0, control=control, channel="web")
        amount = 1.0 if control else 500.0 + n
        found.purchase(f"o-{name}", name, t0 + timedelta(days=1), amount, "EUR")
    p_value = found.report()["revenue_lift"]["EUR"]["p_value"]
    assert p_value == round(1 / (PERMUTATIONS + 1), 5) and p_value > 0


def test_one_customer_a_group_is_no_evidence_of_a_lift() -> None:
    """One treated customer converting 10 of 10 moments against one control customer
    converting 0 of 10: the ci95 was [0.608, 1.0], as if twenty people had answered."""
    low, high = lift({"t": [10, 10]}, {"c": [10, 0]}, resamples=20, seed=1)["ci95"]
    assert low <= 0 < high


def test_a_control_group_of_three_customers_counts_about_three() -> None:
    """Three control customers (1 conversion in 60 moments) against 400 converting 15 %:
    the design effect estimated from three residuals was about 1, so the 60 moments
    counted as independent and the interval excluded 0 by far; three customers cannot
    show a 13-point lift."""
    treated = {f"t{i}": [20, 3 + i % 2 - (i + 1) % 2] for i in range(400)}
    control = {"c0": [20, 0], "c1": [20, 0], "c2": [20, 1]}
    low, high = lift(treated, control, resamples=20, seed=1)["ci95"]
    assert low <= 0 < high


def test_thirty_customers_or_more_keep_the_estimated_design_effect() -> None:
    """From 30 customers a group on, the design effect is estimated, as before: alike
    customers (every one converting 2 of 10) count as their 500 moments."""
    treated = {f"t{i}": [10, 3] for i in range(50)}
    control = {f"c{i}": [10, 2] for i in range(50)}
    _, naive, _ = difference(150, 500, 100, 500)
    assert lift(treated, control, resamples=20, seed=1)["ci95"] == naive
