"""What is derived on read: rolling windows, experience, value and the segment.

Stored figures are exact integer buckets; everything time-relative is computed here
against the reader's ``now``, so it never depends on when the events arrived.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TypeVar

from feature_store.facts import DAY_MS, RESOLUTIONS

V = TypeVar("V")
RESOLUTION_SIZE = {r.name: r.size_ms for r in RESOLUTIONS}
# window name -> (resolution, number of buckets ending with the current one)
WINDOWS: dict[str, tuple[str, int]] = {
    "1h": ("m", 12),
    "24h": ("h", 24),
    "7d": ("d", 7),
    "30d": ("d", 30),
    "365d": ("k", 52),
}
ACTIVITY_WINDOWS = ("1h", "24h", "7d", "30d")


@dataclass(frozen=True, slots=True)
class SegmentThresholds:
    """Where value is high and experience is good (both configurable)."""

    high_value: float = 500.0  # expected spend over the next year
    good_experience: float = 0.5  # 0..1
    unknown_experience: float = 0.6  # assumed when there is no signal yet


class Buckets:
    """The windows hash parsed into (resolution, bucket) -> metric -> value."""

    def __init__(
        self, windows: dict[str, str], resolutions: str = "mhdk", skip: tuple[str, ...] = ()
    ) -> None:
        # fields are "<resolution><bucket>|<metric>": group them by bucket first, so
        # each bucket name is parsed once, not once per metric; fields of resolutions
        # not asked for, and metrics starting with one of ``skip``, are skipped unparsed
        grouped: dict[str, dict[str, int]] = {}
        for key, value in windows.items():
            if key[:1] not in resolutions:
                continue
            head, sep, metric = key.partition("|")
            if not sep or (skip and metric.startswith(skip)):
                continue
            found = grouped.get(head)
            if found is None:
                grouped[head] = {metric: int(value)}
            else:
                found[metric] = int(value)
        # resolution -> bucket -> metric -> value
        self._by: dict[str, dict[int, dict[str, int]]] = {r: {} for r in RESOLUTION_SIZE}
        for head, metrics in grouped.items():
            buckets = self._by.get(head[:1])
            if buckets is not None and head[1:].isdigit():
                buckets[int(head[1:])] = metrics

    def at(self, resolution: str) -> dict[int, dict[str, int]]:
        """The buckets of ``resolution`` (bucket -> metric -> value), as parsed."""
        return self._by[resolution]

    def window(self, name: str, now_ms: int, ahead_ms: int = 0) -> dict[str, int]:
        """Sum of every metric over the named window ending at ``now_ms``: the current
        (partial) bucket and the ``count - 1`` before it, so a window covers a little less
        than its name ("1h" the last 55 to 60 minutes, "365d" 357 to 364 days). Buckets
        dated up to ``ahead_ms`` after ``now_ms`` count as current: a read at the clock's
        now looks as far ahead as events are accepted (``MOMENTS_MAX_FUTURE_SKEW_S``), so
        that what a clock running ahead stamped (a source's, or another process's
        contact) counts at once, not from when this clock reaches it (a contact stamped
        00:01 by a fast clock at 23:59 left the day's cap open to a second contact).

        >>> buckets = Buckets({"d19999|n:call": "1", "d20000|n:call": "2", "d20001|n:call": "4"})
        >>> now = 20000 * 86_400_000 + 86_000_000  # 23:53:20
        >>> buckets.window("7d", now), buckets.window("7d", now, ahead_ms=900_000)
        ({'n:call': 3}, {'n:call': 7})
        """
        res, count = WINDOWS[name]
        size = RESOLUTION_SIZE[res]
        newest, last = now_ms // size, (now_ms + ahead_ms) // size
        total: dict[str, int] = {}
        for idx, metrics in self._by[res].items():
            if newest - count < idx <= last:
                if not total:
                    total = dict(metrics)
                    continue
                for metric, value in metrics.items():
                    total[metric] = total.get(metric, 0) + value
        return total

    def daily(
        self, now_ms: int, days: int = 30, ahead_ms: int = 0
    ) -> list[tuple[float, dict[str, int]]]:
        """(age in days, metrics) of each daily bucket in the last ``days`` days, and of
        those dated up to ``ahead_ms`` after ``now_ms``, of age 0 (as in :meth:`window`)."""
        today, last = now_ms // DAY_MS, (now_ms + ahead_ms) // DAY_MS
        return [
            (float(max(today - idx, 0)), metrics)
            for idx, metrics in self._by["d"].items()
            if today - days < idx <= last
        ]


def by_prefix(fields: dict[str, V], skip_empty: bool = True) -> dict[str, dict[str, V]]:
    """``{"n:call": 2, "x": 1}`` -> ``{"n": {"call": 2}}``: every prefixed field under
    its prefix, in one pass (unprefixed fields are left out, and so are zero or empty
    values unless ``skip_empty`` is false)."""
    out: dict[str, dict[str, V]] = {}
    for key, value in fields.items():
        if value or not skip_empty:
            head, sep, rest = key.partition(":")
            if sep:
                found = out.get(head)
                if found is None:
                    out[head] = {rest: value}
                else:
                    found[rest] = value
    return out


# the daily sentiment figures of each source: (sum in thousandths, count), -1..1
SENTIMENT_FIELDS = (("call_sent_milli", "call_sent_n"), ("social_sent_milli", "social_sent_n"))
CATEGORY = "cat:"  # the daily count of a category's clicks and purchases: cat:<category>


def decay(age_days: float, half_life_days: float) -> float:
    """The weight of a daily figure ``age_days`` old: one half each half-life."""
    weight: float = 0.5 ** (max(age_days, 0.0) / half_life_days)
    return weight


def decayed_experience(
    daily: list[tuple[float, dict[str, int]]], half_life_days: float
) -> float | None:
    """Time-decayed blend in 0..1 of surveys, call sentiment and social sentiment."""
    num = den = 0.0
    for age, m in daily:
        w = decay(age, half_life_days)
        num += w * m.get("survey_milli", 0) / 1000
        den += w * m.get("survey_n", 0)
        for milli, count in SENTIMENT_FIELDS:
            n = m.get(count, 0)
            num += w * (m.get(milli, 0) / 1000 + n) / 2  # -1..1 -> 0..1
            den += w * n
    return num / den if den else None


def decayed_affinity(
    daily: list[tuple[float, dict[str, int]]], half_life_days: float, top: int = 5
) -> dict[str, float]:
    """Time-decayed counts per category from clicks and purchases; the top few."""
    scores: dict[str, float] = defaultdict(float)
    skip = len(CATEGORY)
    for age, m in daily:
        w = decay(age, half_life_days)
        for metric, count in m.items():
            if count and metric.startswith(CATEGORY):
                scores[metric[skip:]] += w * count
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return {k: round(v, 6) for k, v in ranked}


MIN_TENURE_DAYS = 91.25  # a quarter of a year: spend is annualised at most four times


def value_estimate(
    spend_365d: float, first_seen_ms: int | None, last_purchase_ms: int | None, now_ms: int
) -> float:
    """Expected spend over the next year from the purchase history: the last year's
    spend, annualised over the customer's tenure, but over at least a quarter, so that
    a first order is not taken to come back every month (45 within the first month
    counted as 547 a year)."""
    if first_seen_ms is None or spend_365d <= 0:
        return 0.0
    tenure_days = max((now_ms - first_seen_ms) / DAY_MS, MIN_TENURE_DAYS)
    annual = spend_365d * 365 / min(tenure_days, 365.0)
    if last_purchase_ms is not None and (now_ms - last_purchase_ms) > 180 * DAY_MS:
        annual *= 0.5  # lapsing
    return round(annual, 2)


def segment_of(
    experience: float | None, value: float, events: int, purchases: int, t: SegmentThresholds
) -> str:
    """model / growth / at_risk / dangling (experience by value); new for a first contact."""
    if purchases == 0 and events <= 1:
        return "new"
    good = (t.unknown_experience if experience is None else experience) >= t.good_experience
    valuable = value >= t.high_value
    if good:
        return "model" if valuable else "growth"
    return "at_risk" if valuable else "dangling"
