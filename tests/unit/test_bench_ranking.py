"""The offer-ranking bench: each catalogue size is timed both ways, and the section runs
without Kafka or Redis."""

from __future__ import annotations

from streams.bench_ranking import OFFERS, bench_ranking
from tests.unit.test_bench_snapshots import bench_alone


def test_each_catalogue_size_is_timed_both_ways() -> None:
    report = bench_ranking(times=2)
    for offers in OFFERS:
        figures = report[f"offers_{offers}"]
        assert figures["rank_us"] > 0
        ratio = figures["order_us_contenders"] / figures["order_us_plain_sort"]
        assert figures["contenders_over_plain"] == round(ratio, 2)


def test_the_ranking_section_starts_no_services() -> None:
    report = bench_alone("ranking")
    assert set(report["offer_ranking"]) == {"dimension", "shown"} | {f"offers_{n}" for n in OFFERS}
    assert "kafka" not in report and "model_snapshots" not in report
