"""Edges of the estimators ``moments evaluate`` prints, each once let through by a
change to the code that no other test noticed (a mutation review)."""

from __future__ import annotations

import numpy as np
import pytest

from streams.estimators import Logged, _effective, ips_estimates


def logged(propensity: float, reward: float) -> Logged:
    return Logged([1.0], ("a", "b"), {}, "a", propensity, reward, "c1", "web", None)


def test_snips_normalises_by_the_sum_of_the_weights_not_the_count() -> None:
    # weights 1/0.5 = 2 and 1/1.0 = 1: IPS = (2*1 + 1*0) / 2 = 1.0, SNIPS = 2 / 3
    found = ips_estimates([logged(0.5, 1.0), logged(1.0, 0.0)], lambda r: 1.0)
    assert found["ips"] == pytest.approx(1.0)
    assert found["snips"] == pytest.approx(2 / 3, abs=1e-5)


def test_a_target_taking_an_offer_never_logged_first_gets_no_interval() -> None:
    # the logging policy never puts "b" first (propensity 0); the target would, half the time
    logs = [Logged([1.0], ("a", "b"), {}, "a", 1.0, float(i % 2), f"c{i}", "web", None,
                   propensities=(1.0, 0.0)) for i in range(200)]  # fmt: skip
    found = ips_estimates(logs, lambda r: 0.5, lambda r: [0.5, 0.5])
    assert found["variance_ess"] == 0.0 and found["ips_ci95_low"] is None


def test_a_group_whose_every_moment_converted_counts_each_customer_once() -> None:
    """40 customers, 10 moments each, all converted: 40 independent draws, not 400 (an
    interval as narrow as 400 would claim)."""
    group = np.array([[10.0, 10.0]] * 40)
    assert _effective(group) == pytest.approx((40.0, 40.0))
