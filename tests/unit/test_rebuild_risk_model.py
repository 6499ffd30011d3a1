"""The churn-risk model a rebuild learns again from ``risk-examples`` learns as the live
risk learner does: each example once, and none whose figures would poison it."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from agents.risk import ChurnRisk
from schemas.risk import RiskExample, encode_risk_example
from streams.rebuild_risk import learn_risk_examples

AT = datetime(2026, 12, 1, tzinfo=UTC)


def example(n: int, complaints: float, churned: bool) -> bytes:
    return encode_risk_example(RiskExample(
        example_id=f"e-{n}", x={"complaints_30d": complaints, "purchases_90d": 1.0},
        y=churned, snapshot_ts=AT, label_ts=AT,
    ))  # fmt: skip


def test_an_example_with_a_figure_out_of_range_is_not_learned() -> None:
    """One example with a figure of 1e200 made every weight NaN: every rebuilt customer's
    band read "low"."""
    model, learned = ChurnRisk(), set[str]()
    values = [example(0, 1e200, True), b"not an example"]
    values += [example(n, float(n % 4), n % 4 == 3) for n in range(1, 400)]
    learn_risk_examples(model, learned, values)
    risk = model.predict_one({"complaints_30d": 3.0, "purchases_90d": 1.0})
    assert math.isfinite(risk) and risk > model.predict_one({"complaints_30d": 0.0,
                                                              "purchases_90d": 1.0})  # fmt: skip
    assert "e-0" in learned  # seen, and not learned from a copy either


def test_a_copy_of_an_example_teaches_nothing_more() -> None:
    once, twice = ChurnRisk(), ChurnRisk()
    values = [example(n, float(n % 3), n % 3 == 2) for n in range(300)]
    learn_risk_examples(once, set(), values)
    learn_risk_examples(twice, set(), values + values[:100])
    probe = {"complaints_30d": 2.0, "purchases_90d": 1.0}
    assert once.predict_one(probe) == twice.predict_one(probe)
