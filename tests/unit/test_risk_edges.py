"""Edges of churn risk and the alerts it raises, each once let through by a change to
the code that no other test noticed (a mutation review)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agents.returning_customers import Return, welcomed_back
from agents.risk import ChurnRisk
from agents.risk_features import baseline_risk
from agents.risk_watch import held_at, risk_band, watch_risk
from feature_store import CustomerFeatures
from feature_store.facts import ts_ms
from feature_store.features import ContactHistory
from schemas import WebClick

T = datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("signal", "weight"),
    [("cancel_calls", 0.30), ("unsubscribed", 0.30), ("complaints_30d", 0.10),
     ("negative_mentions_30d", 0.05), ("consent_withdrawn", 0.05), ("purchases_365d", -0.02)],
)  # fmt: skip
def test_the_baseline_weighs_each_signal_as_documented(signal: str, weight: float) -> None:
    """The baseline decides risk, and so retention calls, through warm-up and after every
    drift: a cancel call's weight cut to a tenth went unnoticed."""
    neutral = {"experience": 0.5, "purchases_365d": 2.0}
    assert baseline_risk({**neutral, signal: neutral.get(signal, 0.0) + 1.0}) - baseline_risk(
        neutral
    ) == pytest.approx(weight)


def test_a_risk_exactly_at_the_threshold_is_high() -> None:
    assert risk_band(0.7, 0.7) == "high"
    assert risk_band(0.5, 0.5, was="low") == "high"


def test_a_crossing_in_the_same_millisecond_as_the_stored_low_band_is_raised() -> None:
    click = WebClick(event_id="w2", customer_id="c1", ts=T, page="/")
    features = CustomerFeatures(risk_band="low", risk_band_ms=ts_ms(T), experience=0.0,
                                complaints_30d=3)  # fmt: skip
    watch = watch_risk(click, features, T, ChurnRisk(), threshold=0.1, subject="s")
    assert watch.crossed


def test_a_touchpoint_at_the_snapshot_instant_is_held() -> None:
    assert held_at([("b", T), ("c", T)], T, "c") == ["b"]


def test_a_win_back_raised_at_the_instant_the_return_began_welcomed_it() -> None:
    features = CustomerFeatures(contact=ContactHistory(last_intervention={"win_back": T}))
    assert welcomed_back(features, Return(timedelta(days=120), T))
