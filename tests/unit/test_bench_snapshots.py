"""The model-snapshot bench: both forms of one snapshot restore the same model, and the
bench runs without Kafka or Redis."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from streams.bench_snapshots import OFFERS, bench_snapshots


def test_each_catalogue_size_is_measured_in_both_forms() -> None:
    report = bench_snapshots(times=1)
    for offers in OFFERS:
        figures = report[f"offers_{offers}"]
        assert figures["packed_bytes"] < figures["lists_bytes"]
        assert figures["restore_ms_packed"] > 0 and figures["restore_ms_lists"] > 0
        ratio = figures["restore_ms_lists"] / figures["restore_ms_packed"]
        assert figures["restore_lists_over_packed"] == round(ratio, 2)


def bench_alone(section: str) -> dict[str, Any]:
    """``moments bench --only section``'s report, where Kafka and Redis cannot be reached."""
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "bench", "--only", section],
        capture_output=True, text=True, timeout=120, check=False,
        env={"PATH": "/usr/bin:/bin", "MOMENTS_KAFKA_BOOTSTRAP": "127.0.0.1:1",
             "MOMENTS_REDIS_URL": "redis://127.0.0.1:1/0"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def test_the_snapshots_section_starts_no_services() -> None:
    report = bench_alone("snapshots")
    assert set(report["model_snapshots"]) == {"dimension"} | {f"offers_{n}" for n in OFFERS}
    assert "kafka" not in report
