"""What the latency histograms can tell apart."""

from __future__ import annotations

from streams.metrics import Metrics


def test_a_decision_minutes_behind_its_touchpoint_is_counted_as_minutes() -> None:
    """Past 10 s every age fell in +Inf alone, and a p99 read from the buckets said 10 s
    for a worker catching up hours behind."""
    metrics = Metrics()
    metrics.event_to_decision.observe(100.0)
    bucket = metrics.registry.get_sample_value
    name = "moments_event_to_decision_seconds_bucket"
    assert bucket(name, {"le": "60.0"}) == 0
    assert bucket(name, {"le": "120.0"}) == 1
    assert bucket(name, {"le": "3600.0"}) == 1
