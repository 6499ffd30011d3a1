"""Customer segments from the customer-experience literature: experience by value.

>>> from feature_store import CustomerFeatures
>>> segment_of(CustomerFeatures(events=5, purchases=3, spend=900.0, survey=0.9))
'model'
>>> segment_of(CustomerFeatures(events=5, purchases=3, spend=900.0, sentiment=-0.6))
'at_risk'
"""

from __future__ import annotations

from dataclasses import dataclass

from feature_store import CustomerFeatures


@dataclass(frozen=True, slots=True)
class SegmentThresholds:
    high_value_spend: float = 500.0
    good_experience: float = 0.5


def experience_of(features: CustomerFeatures) -> float:
    """Experience in 0..1: surveys and sentiment blended; 0.6 (neutral-good) when unknown."""
    parts: list[float] = []
    if features.survey is not None:
        parts.append(features.survey)
    if features.sentiment is not None:
        parts.append((features.sentiment + 1) / 2)
    complaints = features.call_reasons.get("complaint", 0) + features.negative_mentions
    base = sum(parts) / len(parts) if parts else 0.6
    return max(0.0, base - 0.1 * min(complaints, 5))


def segment_of(
    features: CustomerFeatures | None, thresholds: SegmentThresholds = SegmentThresholds()
) -> str:
    if features is None or (features.purchases == 0 and features.events <= 1):
        return "new"
    good = experience_of(features) >= thresholds.good_experience
    valuable = features.spend >= thresholds.high_value_spend
    if good:
        return "model" if valuable else "growth"
    return "at_risk" if valuable else "dangling"
