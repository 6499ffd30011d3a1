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
