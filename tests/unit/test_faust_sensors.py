"""Faust's sensors, in the registry Moments exports: every histogram in seconds."""

from __future__ import annotations

from prometheus_client import generate_latest

from streams.app import faust_sensors
from streams.metrics import Metrics


def test_faust_histograms_are_exported_in_seconds() -> None:
    """Only the event runtime was converted; seven more were exported in milliseconds
    with no unit in their names. The event runtime is not exported: the workers take
    their events in batches, which Faust does not time, and it stayed empty."""
    metrics = Metrics()
    sensors = faust_sensors(metrics)
    sensors.producer_send_latency.observe(250.0)  # Faust observes milliseconds
    sensors.events_runtime_latency.observe(4.0)
    text = generate_latest(metrics.registry).decode()
    histograms = {
        line.split()[2] for line in text.splitlines() if line.startswith("# TYPE moments_faust")
        and line.endswith(" histogram")
    }  # fmt: skip
    assert len(histograms) == 7 and all(h.endswith("_seconds") for h in histograms), histograms
    assert "moments_faust_producer_send_latency_seconds_sum 0.25" in text
    assert "event_runtime" not in text and "events_runtime" not in text
