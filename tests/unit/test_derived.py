"""feature_store.derived: windows, decayed experience and affinity, value and segments."""

from __future__ import annotations

import pytest

from feature_store.derived import (
    WINDOWS,
    Buckets,
    SegmentThresholds,
    decayed_affinity,
    decayed_experience,
    segment_of,
    value_estimate,
)
from feature_store.facts import RESOLUTIONS
from tests.unit.factories import DAY_MS, T0_MS

RES = {r.name: r for r in RESOLUTIONS}
Daily = list[tuple[float, dict[str, int]]]


# --------------------------------------------------------------------------------------
# Buckets
# --------------------------------------------------------------------------------------


def test_every_window_fits_in_the_buckets_kept() -> None:
    assert set(WINDOWS) == {"1h", "24h", "7d", "30d", "365d"}
    for name, (res, count) in WINDOWS.items():
        assert RES[res].keep >= count, name
    # the windows cover their nominal length, to within one bucket
    nominal = {"1h": 3_600_000, "24h": DAY_MS, "7d": 7 * DAY_MS, "30d": 30 * DAY_MS}
    nominal["365d"] = 365 * DAY_MS
    for name, (res, count) in WINDOWS.items():
        assert 0 <= nominal[name] - count * RES[res].size_ms < RES[res].size_ms, name


def _ladder(now_ms: int) -> dict[str, str]:
    """For each resolution, bucket ``newest - j`` holds 2**j of metric "x" (j = -1..60)."""
    windows = {}
    for r in RESOLUTIONS:
        newest = now_ms // r.size_ms
        for j in range(-1, 61):
            windows[f"{r.name}{newest - j}|x"] = str(2**j if j >= 0 else 10**30)
    return windows


@pytest.mark.parametrize("name", list(WINDOWS))
@pytest.mark.parametrize("offset_ms", [0, 1, 299_999, 3 * DAY_MS + 12_345])
def test_window_sums_exactly_its_buckets(name: str, offset_ms: int) -> None:
    now = T0_MS + offset_ms
    _, count = WINDOWS[name]
    total = Buckets(_ladder(now)).window(name, now)
    # bits 0..count-1: the current bucket and the count-1 before it, no future bucket
    assert total == {"x": 2**count - 1}


def test_window_sums_every_metric_and_skips_markers_and_junk() -> None:
    day = T0_MS // DAY_MS
    windows = {
        f"d{day}|n:web_click": "2",
        f"d{day - 1}|n:web_click": "3",
        f"d{day - 1}|n:email": "1",
        f"d{day - 8}|n:email": "5",  # in 30d, not in 7d
        f"d{day - 30}|n:email": "7",  # in neither
        "max|d": str(day),
        "max|m": "12",
        "d-3|n:email": "100",
        "q5|n:email": "100",
        "d12": "100",
        f"h{T0_MS // 3_600_000}|n:web_click": "1",
    }
    buckets = Buckets(windows)
    assert buckets.window("7d", T0_MS) == {"n:web_click": 5, "n:email": 1}
    assert buckets.window("30d", T0_MS) == {"n:web_click": 5, "n:email": 6}
    assert buckets.window("24h", T0_MS) == {"n:web_click": 1}
    assert buckets.window("1h", T0_MS) == {}
    assert Buckets({}).window("365d", T0_MS) == {}


def test_buckets_leave_the_skipped_metrics_unparsed() -> None:
    # a read for decisions skips the descriptive counts (half a bucket's fields): not
    # even their values are read
    windows = {"d1|n:call": "not a number", "d1|cat:books": "2", "d2|cats": "1", "d3|ch:web": "1"}
    buckets = Buckets(windows, "d", skip=("n:", "ch:", "cats"))
    assert buckets.at("d") == {1: {"cat:books": 2}}
    assert Buckets({"d1|cats": "1"}, "d").at("d") == {1: {"cats": 1}}  # skips none unless told


def test_daily_gives_each_day_bucket_with_its_age() -> None:
    day = T0_MS // DAY_MS
    windows = {f"d{day - age}|m": str(age + 1) for age in (0, 3, 29, 30, 31)}
    windows[f"d{day + 1}|m"] = "99"  # tomorrow: not listed
    windows[f"h{T0_MS // 3_600_000}|m"] = "98"
    daily = sorted(Buckets(windows).daily(T0_MS))
    assert daily == [(0.0, {"m": 1}), (3.0, {"m": 4}), (29.0, {"m": 30})]
    assert sorted(Buckets(windows).daily(T0_MS, days=1)) == [(0.0, {"m": 1})]
    # read at the clock's now: tomorrow's (a clock running ahead) is today's, of age 0
    ahead = Buckets(windows).daily(T0_MS, days=1, ahead_ms=DAY_MS)
    assert sorted(ahead, key=lambda d: d[1]["m"]) == [(0.0, {"m": 1}), (0.0, {"m": 99})]
    assert Buckets(windows).daily(T0_MS, days=1, ahead_ms=1) == [(0.0, {"m": 1})]


@pytest.mark.parametrize("name", list(WINDOWS))
def test_a_window_read_ahead_counts_the_buckets_up_to_that_far_ahead(name: str) -> None:
    res, count = WINDOWS[name]
    size = RES[res].size_ms
    now = T0_MS - T0_MS % size + size - 1  # the last moment of a bucket
    ladder = _ladder(now)
    ladder[f"{res}{now // size + 2}|x"] = "1"  # two buckets ahead: beyond the look-ahead
    assert Buckets(ladder).window(name, now, ahead_ms=size) == {"x": 2**count - 1 + 10**30}
    assert Buckets(ladder).window(name, now, ahead_ms=0) == {"x": 2**count - 1}


# --------------------------------------------------------------------------------------
# Decayed experience
# --------------------------------------------------------------------------------------


def surveyed(milli: int, n: int = 1) -> dict[str, int]:
    return {"survey_milli": milli, "survey_n": n}


def test_no_signal_no_experience() -> None:
    assert decayed_experience([], 14.0) is None
    assert decayed_experience([(0.0, {"n:web_click": 4, "cat:books": 1})], 14.0) is None


@pytest.mark.parametrize(
    ("metrics", "expected"),
    [
        (surveyed(800), 0.8),
        (surveyed(1800, 3), 0.6),
        ({"call_sent_milli": 0, "call_sent_n": 1}, 0.5),
        ({"call_sent_milli": -1000, "call_sent_n": 1}, 0.0),
        ({"social_sent_milli": 1000, "social_sent_n": 1}, 1.0),
        # -0.25 -> 0.375 and +0.5 -> 0.75: each mention and call counts once
        ({"call_sent_milli": -250, "call_sent_n": 1, "social_sent_milli": 500,
          "social_sent_n": 1}, 0.5625),
        ({**surveyed(1000), "call_sent_milli": -1000, "call_sent_n": 1}, 0.5),
        ({**surveyed(900, 2), "social_sent_milli": -400, "social_sent_n": 2}, (0.9 + 0.8) / 4),
    ],
)  # fmt: skip
def test_experience_blends_surveys_and_sentiment(metrics: dict[str, int], expected: float) -> None:
    assert decayed_experience([(0.0, metrics)], 14.0) == pytest.approx(expected)
    # one day apart makes no difference to a single day's blend
    assert decayed_experience([(5.0, metrics)], 14.0) == pytest.approx(expected)


def test_recent_surveys_weigh_more_than_old_ones() -> None:
    happy_now_sad_before: Daily = [(0.0, surveyed(1000)), (14.0, surveyed(0))]
    sad_now_happy_before: Daily = [(0.0, surveyed(0)), (14.0, surveyed(1000))]
    assert decayed_experience(happy_now_sad_before, 14.0) == pytest.approx(2 / 3)
    assert decayed_experience(sad_now_happy_before, 14.0) == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    ("age", "half_life", "weight"),
    [(7.0, 7.0, 0.5), (14.0, 7.0, 0.25), (14.0, 14.0, 0.5), (28.0, 14.0, 0.25), (0.0, 3.0, 1.0)],
)
def test_weight_halves_every_half_life(age: float, half_life: float, weight: float) -> None:
    # a sad survey today and a happy one ``age`` days ago: experience = w / (1 + w)
    daily: Daily = [(0.0, surveyed(0)), (age, surveyed(1000))]
    assert decayed_experience(daily, half_life) == pytest.approx(weight / (1 + weight))


def test_a_bucket_from_the_future_weighs_like_today() -> None:
    daily: Daily = [(-3.0, surveyed(1000)), (0.0, surveyed(0))]
    assert decayed_experience(daily, 14.0) == pytest.approx(0.5)


# --------------------------------------------------------------------------------------
# Decayed affinity
# --------------------------------------------------------------------------------------


def cats(**counts: int) -> dict[str, int]:
    return {f"cat:{k}": v for k, v in counts.items()}


def test_affinity_keeps_the_top_five_best_first_ties_by_name() -> None:
    daily: Daily = [(0.0, {**cats(a=5, b=3, c=3, d=1, e=2, f=4), "n:web_click": 50})]
    affinity = decayed_affinity(daily, 14.0)
    assert list(affinity.items()) == [("a", 5.0), ("f", 4.0), ("b", 3.0), ("c", 3.0), ("e", 2.0)]
    assert list(decayed_affinity(daily, 14.0, top=2)) == ["a", "f"]


def test_affinity_decays_with_age_and_sums_over_days() -> None:
    daily: Daily = [
        (14.0, cats(books=2, sports=1)),
        (0.0, cats(home=1)),
        (7.0, cats(sports=1)),
        (28.0, cats(travel=8)),
    ]
    affinity = decayed_affinity(daily, 14.0)
    assert affinity == {
        "travel": 2.0,
        "books": 1.0,
        "home": 1.0,
        "sports": round(0.5 + 0.5**0.5, 6),
    }
    assert list(affinity) == ["travel", "sports", "books", "home"]
    assert decayed_affinity([], 14.0) == {}
    assert decayed_affinity([(0.0, cats(zero=0))], 14.0) == {}


# --------------------------------------------------------------------------------------
# Value
# --------------------------------------------------------------------------------------

NOW = 1_000 * DAY_MS


def value(spend: float, tenure_days: float | None, since_purchase_days: float | None) -> float:
    first = None if tenure_days is None else int(NOW - tenure_days * DAY_MS)
    last = None if since_purchase_days is None else int(NOW - since_purchase_days * DAY_MS)
    return value_estimate(spend, first, last, NOW)


def test_no_purchases_no_value() -> None:
    assert value(0.0, 100, None) == 0.0
    assert value(0.0, 100, 10) == 0.0
    assert value(120.0, None, 10) == 0.0


@pytest.mark.parametrize(
    ("spend", "tenure", "expected"),
    [
        (100.0, 146, 250.0),  # 146 days in: two fifths of a year
        (100.0, 182.5, 200.0),
        (250.0, 365, 250.0),
        (250.0, 800, 250.0),  # a full year of history is taken as it is
        (30.0, 10, 120.0),  # under a quarter counts as a quarter: at most four times
        (30.0, 91.25, 120.0),
        (45.0, 1, 180.0),  # one first order is not a high-value customer (was 547.5)
        (0.01, 365, 0.01),
        (99.99, 100, 364.96),  # 364.9635, rounded to cents
    ],
)
def test_value_annualises_by_tenure(spend: float, tenure: float, expected: float) -> None:
    assert value(spend, tenure, 1) == pytest.approx(expected, abs=1e-9)


def test_lapsing_customers_are_worth_half() -> None:
    assert value(400.0, 400, 179) == 400.0
    assert value(400.0, 400, 180) == 400.0
    assert value(400.0, 400, 181) == 200.0
    assert value(400.0, 400, None) == 400.0
    assert value(100.0, 146, 200) == 125.0


# --------------------------------------------------------------------------------------
# Segments
# --------------------------------------------------------------------------------------

DEFAULT = SegmentThresholds()


@pytest.mark.parametrize(
    ("experience", "worth", "events", "purchases", "segment"),
    [
        (None, 0.0, 0, 0, "new"),
        (None, 0.0, 1, 0, "new"),
        (0.95, 5000.0, 1, 0, "new"),  # a first contact is new, whatever else is known
        (0.1, 0.0, 1, 0, "new"),
        (None, 0.0, 1, 1, "growth"),  # a first purchase: unknown experience counts as good
        (None, 0.0, 2, 0, "growth"),
        (None, 600.0, 5, 2, "model"),
        (0.9, 900.0, 12, 3, "model"),
        (0.8, 50.0, 5, 1, "growth"),
        (0.2, 900.0, 9, 4, "at_risk"),
        (0.1, 20.0, 4, 1, "dangling"),
        # the thresholds are inclusive
        (0.5, 500.0, 3, 1, "model"),
        (0.5, 499.99, 3, 1, "growth"),
        (0.49, 500.0, 3, 1, "at_risk"),
        (0.49, 499.99, 3, 1, "dangling"),
        (0.0, 0.0, 3, 0, "dangling"),
    ],
)
def test_segment_of(
    experience: float | None, worth: float, events: int, purchases: int, segment: str
) -> None:
    assert segment_of(experience, worth, events, purchases, DEFAULT) == segment


def test_segment_thresholds_are_used() -> None:
    strict = SegmentThresholds(high_value=1000.0, good_experience=0.95)
    assert segment_of(0.9, 900.0, 12, 3, DEFAULT) == "model"
    assert segment_of(0.9, 900.0, 12, 3, strict) == "dangling"
    assert segment_of(0.95, 1000.0, 12, 3, strict) == "model"
    lenient = SegmentThresholds(high_value=10.0, good_experience=0.0)
    assert segment_of(0.1, 20.0, 4, 1, DEFAULT) == "dangling"
    assert segment_of(0.1, 20.0, 4, 1, lenient) == "model"
    wary = SegmentThresholds(unknown_experience=0.4)
    assert segment_of(None, 600.0, 5, 2, wary) == "at_risk"
    assert segment_of(None, 60.0, 5, 2, wary) == "dangling"
    assert segment_of(None, 60.0, 1, 0, wary) == "new"
