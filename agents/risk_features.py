"""The churn-risk model's view of a customer, and the baseline that answers without a model.

:func:`risk_features` turns a customer's stored features into the same few numbers every
time (as of now, or with :func:`risk_features_at` as of one of their touchpoints);
:func:`learnable_example` says whether the model may learn from them; :func:`baseline_risk`
is the transparent heuristic :class:`agents.risk.ChurnRisk` serves while it warms up or
after a drift. Pure (no I/O).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime

from agents.risk_labels import LAPSE_DAYS
from feature_store.features import CustomerFeatures

UNKNOWN_EXPERIENCE = 0.6  # assumed when there is no signal yet (as the segment thresholds do)
MAX_DAYS = 365.0  # recency features are capped here
MAX_RISK_FEATURE = 1e9  # far beyond any count, day or log the workers compute
# Counts are capped here: the model's scaler keeps a running variance, which one customer
# with a million complaints (a faulty or hostile producer) would inflate for good, every
# other customer's count then scaling to about zero. No customer's risk reads more.
MAX_COUNT = 100.0


def _days_since(then: datetime | None, now: datetime, missing: float) -> float:
    if then is None:
        return missing
    return min(max((now - then).total_seconds() / 86_400, 0.0), MAX_DAYS)


def risk_features(features: CustomerFeatures, now: datetime) -> dict[str, float]:
    """The small numeric view of a customer the risk model learns from (always the same keys),
    as of ``now``: quiet since their last touchpoint (a profile looked at).

    >>> from datetime import UTC
    >>> x = risk_features(CustomerFeatures(), datetime(2026, 11, 23, tzinfo=UTC))
    >>> x["experience"], x["days_since_seen"], x["days_since_purchase"], x["unsubscribed"]
    (0.6, 0.0, 365.0, 0.0)
    """
    return _risk_features(features, now, features.last_seen)


def risk_features_at(
    features: CustomerFeatures, at: datetime, event_id: str = ""
) -> dict[str, float]:
    """:func:`risk_features` as of the touchpoint ``event_id`` at ``at``, which ``features``
    already hold: the days since the customer was seen are those before it, the quiet spell
    it ended (as of its own time, the figure is about the customer, not how late it was read).

    >>> from datetime import UTC
    >>> from feature_store.features import RecentTouchpoint
    >>> day = lambda d: datetime(2026, 11, d, tzinfo=UTC)
    >>> back = CustomerFeatures(last_seen=day(23), recent=[
    ...     RecentTouchpoint(day(23), "web_click", "e2"),
    ...     RecentTouchpoint(day(3), "web_click", "e1")])
    >>> risk_features_at(back, day(23), "e2")["days_since_seen"]
    20.0
    """
    before = (r.ts for r in features.recent if r.ts < at and r.event_id != event_id)
    return _risk_features(features, at, max(before, default=None))


def _risk_features(
    features: CustomerFeatures, now: datetime, last_seen: datetime | None
) -> dict[str, float]:
    month = features.activity.get("30d", {})
    week = features.activity.get("7d", {})
    withdrawn = sum(1 for granted in features.consent.values() if not granted)
    return {
        "experience": UNKNOWN_EXPERIENCE if features.experience is None else features.experience,
        "complaints_30d": _count(features.complaints_30d),
        "negative_mentions_30d": _count(features.negative_mentions_30d),
        "log_negative_reach_30d": math.log1p(max(features.negative_reach_30d, 0)),
        "days_since_seen": _days_since(last_seen, now, 0.0),
        "log_activity_30d": math.log1p(sum(month.values())),
        "log_activity_7d": math.log1p(sum(week.values())),
        "log_value": math.log1p(max(features.value, 0.0)),
        "purchases_365d": _count(features.purchases_365d),
        "days_since_purchase": _days_since(features.last_purchase, now, MAX_DAYS),
        "unsubscribed": 1.0 if _unsubscribed(features) else 0.0,
        "cancel_calls": _count(features.call_reasons.get("cancel", 0)),
        "consent_withdrawn": _count(withdrawn),
    }


COUNTS = ("complaints_30d", "negative_mentions_30d", "purchases_365d", "cancel_calls",
          "consent_withdrawn")  # fmt: skip


# The other figures' ranges, as the workers compute them; the logs' for amounts up to the
# store's 64-bit counts (2^63 cents of value: log 40.5; 2^63 of reach: log 43.7). One
# example beyond them (a faulty or foreign writer of `risk-examples`: log_value 10^6, say)
# would swell the scaler's variance for good, and every other customer's figure then
# reads as about zero.
MAX_LOG = 44.0
RANGES = {
    "experience": (0.0, 1.0),
    "unsubscribed": (0.0, 1.0),
    "days_since_seen": (0.0, MAX_DAYS),
    "days_since_purchase": (0.0, MAX_DAYS),
    "log_negative_reach_30d": (0.0, MAX_LOG),
    "log_activity_30d": (0.0, MAX_LOG),
    "log_activity_7d": (0.0, MAX_LOG),
    "log_value": (0.0, MAX_LOG),
} | dict.fromkeys(COUNTS, (0.0, MAX_COUNT))
# the figures the model learns and scores: risk_features' keys, each with its range
FEATURES = frozenset(RANGES)


def capped(x: Mapping[str, float]) -> dict[str, float]:
    """``x`` with each figure within its range (:data:`RANGES`: counts within 0 to
    :data:`MAX_COUNT`), as the model learns and scores them: examples and snapshots taken
    before counts were capped (on ``risk-examples``, relearned by a rebuild) hold them
    uncapped. A figure the model does not know (:func:`unknown_features`) is left out:
    kept, each name a foreign or buggy writer of ``risk-examples`` made up became a weight
    of its own, and the snapshot every process loads grew without bound.

    >>> capped({"cancel_calls": 1e6, "experience": 0.2, "log_value": 1e6, "new": 7.0})
    {'cancel_calls': 100.0, 'experience': 0.2, 'log_value': 44.0}
    """
    out = {}
    for k, v in x.items():
        if k in RANGES:
            low, high = RANGES[k]
            out[k] = min(max(float(v), low), high)
    return out


def unknown_features(x: Mapping[str, float]) -> int:
    """How many figures of ``x`` the model does not know (:data:`FEATURES`), and leaves out.

    >>> unknown_features({"experience": 0.2, "new": 7.0, "newer": 1.0})
    2
    """
    return sum(1 for k in x if k not in FEATURES)


def _count(n: float) -> float:
    """``n`` as the model reads a count, within 0 to :data:`MAX_COUNT`.

    >>> _count(3), _count(10**9), _count(-2)
    (3.0, 100.0, 0.0)
    """
    return min(max(float(n), 0.0), MAX_COUNT)


def _unsubscribed(features: CustomerFeatures) -> bool:
    """Unsubscribed from email now: a grant since lifts it (as the contact policy reads
    it); an unsubscribe from before Moments kept the flag counts while no grant came."""
    if features.email_subscribed is not None:
        return not features.email_subscribed
    return features.emails.get("unsubscribed", 0) > 0


def learnable_example(x: Mapping[str, float]) -> bool:
    """Whether the risk model may learn from ``x``: every figure finite and within
    ``MAX_RISK_FEATURE`` (one huge figure would make every weight NaN).

    >>> learnable_example({"complaints_30d": 2.0}), learnable_example({"complaints_30d": 1e200})
    (True, False)
    """
    return all(math.isfinite(v) and abs(v) <= MAX_RISK_FEATURE for v in x.values())


def baseline_risk(x: Mapping[str, float]) -> float:
    """A transparent additive heuristic, clipped to 0.01..0.99 (missing keys: neutral).

    Poor experience, recent complaints and negative mentions, going quiet, an unsubscribe, a
    cancel call and withdrawn consent add risk; purchases in the last year take some away.

    >>> baseline_risk({}) < baseline_risk({"experience": 0.1, "complaints_30d": 2.0})
    True
    """
    experience = min(max(x.get("experience", UNKNOWN_EXPERIENCE), 0.0), 1.0)
    risk = (
        0.05
        + 0.30 * (1.0 - experience)
        + 0.10 * min(x.get("complaints_30d", 0.0), 3.0)
        + 0.05 * min(x.get("negative_mentions_30d", 0.0), 3.0)
        + 0.25 * min(x.get("days_since_seen", 0.0) / LAPSE_DAYS, 1.0)
        + 0.30 * min(x.get("unsubscribed", 0.0), 1.0)
        + 0.30 * min(x.get("cancel_calls", 0.0), 1.0)
        + 0.05 * min(x.get("consent_withdrawn", 0.0), 4.0)
        - 0.02 * min(x.get("purchases_365d", 0.0), 5.0)
    )
    return min(max(risk, 0.01), 0.99)
