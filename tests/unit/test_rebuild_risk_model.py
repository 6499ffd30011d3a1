"""The churn-risk model a rebuild learns again from ``risk-examples`` learns as the live
risk learner does: each example once, and none whose figures would poison it."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from agents.risk import ChurnRisk
from agents.risk_features import capped, risk_features
from feature_store.features import CustomerFeatures
from feature_store.models import SnapshotDamaged
from schemas.risk import RiskExample, encode_risk_example
from streams import rebuild_risk
from streams.model_snapshots import RISK
from streams.rebuild_risk import learn_risk_examples, readable_examples
from streams.settings import Settings

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
    learn_risk_examples(model, learned, readable_examples(values))
    risk = model.predict_one({"complaints_30d": 3.0, "purchases_90d": 1.0})
    assert math.isfinite(risk) and risk > model.predict_one({"complaints_30d": 0.0,
                                                              "purchases_90d": 1.0})  # fmt: skip
    assert "e-0" in learned  # seen, and not learned from a copy either


def test_a_copy_of_an_example_teaches_nothing_more() -> None:
    once, twice = ChurnRisk(), ChurnRisk()
    values = [example(n, float(n % 3), n % 3 == 2) for n in range(300)]
    learn_risk_examples(once, set(), readable_examples(values))
    learn_risk_examples(twice, set(), readable_examples(values + values[:100]))
    probe = {"complaints_30d": 2.0, "purchases_90d": 1.0}
    assert once.predict_one(probe) == twice.predict_one(probe)


async def test_a_damaged_snapshot_in_the_target_is_dropped_and_the_model_learned_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A rebuild with --force into a Redis whose churn-risk snapshot was damaged ended
    in a traceback after its whole replay, the final re-read of erasures skipped."""

    class Models:
        def __init__(self) -> None:
            self.dropped: list[str] = []

        async def load(self, name: str) -> None:
            raise SnapshotDamaged("damaged")

        async def discard(self, name: str) -> None:
            self.dropped.append(name)

    async def replay(settings: Any, topic: str, handle: Any, batch: int) -> None:
        await handle([SimpleNamespace(value=example(n, 0.0, False)) for n in range(3)])

    monkeypatch.setattr(rebuild_risk, "replay", replay)
    models = Models()
    model = await rebuild_risk.risk_model(Settings(), SimpleNamespace(models=models), 500)  # type: ignore[arg-type]
    assert models.dropped == [RISK] and model.examples == 3


def test_figures_the_workers_compute_from_the_largest_amounts_are_read_as_they_are() -> None:
    """Five purchases of the largest amount (10^12) make a value past e^30, which the
    model read as 30 for a while; the store counts to 2^63 (cents), annualised x4."""
    features = CustomerFeatures(value=4 * 2**63 / 100, negative_reach_30d=2**63 - 1)  # annualised
    x = risk_features(features, AT)
    assert x["log_value"] > 40 and x["log_negative_reach_30d"] > 43
    assert capped(x) == x
