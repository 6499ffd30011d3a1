"""Touchpoint builders and helpers shared by the feature-store unit tests (no Redis)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from feature_store.derived import SegmentThresholds
from feature_store.facts import Fact, touchpoint_fact
from feature_store.features import CustomerFeatures, build_features
from feature_store.reference import CustomerState
from schemas import (
    Call,
    Consent,
    Email,
    Purchase,
    SocialMention,
    Survey,
    TouchpointEvent,
    WebClick,
)

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # a Monday, 09:00 UTC
T0_MS = 1_795_424_400_000  # T0 in epoch milliseconds, worked out by hand
MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

_ids = itertools.count()

When = datetime | float


def at(seconds: float = 0.0, **delta: float) -> datetime:
    """T0 shifted by ``seconds`` plus any timedelta keywords (negative: the past)."""
    return T0 + timedelta(seconds=seconds, **delta)


def _common(ts: When, customer: str, event_id: str | None) -> dict[str, Any]:
    return {
        "event_id": event_id if event_id is not None else f"e{next(_ids)}",
        "customer_id": customer,
        "ts": ts if isinstance(ts, datetime) else at(ts),
    }


def click(
    ts: When = 0.0,
    category: str | None = None,
    *,
    customer: str = "c1",
    event_id: str | None = None,
) -> WebClick:
    return WebClick(**_common(ts, customer, event_id), page="/p", category=category)


def purchase(
    amount: float,
    ts: When = 0.0,
    categories: list[str] | None = None,
    *,
    event_id: str | None = None,
    currency: str = "EUR",
) -> Purchase:
    return Purchase(
        **_common(ts, "c1", event_id),
        order_id=f"o{next(_ids)}",
        amount=amount,
        currency=currency,
        categories=categories or [],
    )


def consent(channel: str, granted: bool, ts: When) -> Consent:
    return Consent(**_common(ts, "c1", None), channel=channel, granted=granted)


def survey(score: float, scale: str, ts: When = 0.0) -> Survey:
    return Survey(**_common(ts, "c1", None), score=score, scale=scale)


def mention(sentiment: float, reach: int | None, ts: When = 0.0) -> SocialMention:
    return SocialMention(**_common(ts, "c1", None), platform="x", sentiment=sentiment, reach=reach)


def email(action: str, ts: When = 0.0) -> Email:
    return Email(**_common(ts, "c1", None), action=action)


def call_started(reason: str = "support", ts: When = 0.0, direction: str = "inbound") -> Call:
    return Call(**_common(ts, "c1", None), status="started", direction=direction, reason=reason)


def call_ended(
    sentiment: float | None, ts: When = 0.0, reason: str = "support", direction: str = "inbound"
) -> Call:
    return Call(
        **_common(ts, "c1", None),
        status="ended",
        direction=direction,
        reason=reason,
        sentiment=sentiment,
        duration_s=60,
    )


def as_fact(item: TouchpointEvent | Fact) -> Fact:
    return item if isinstance(item, Fact) else touchpoint_fact(item)


def apply_all(
    items: Iterable[TouchpointEvent | Fact],
    state: CustomerState | None = None,
    now_ms: int = T0_MS,
    **kw: Any,
) -> CustomerState:
    """Apply touchpoints and facts in the given order to a (new) reference state."""
    state = CustomerState() if state is None else state
    for item in items:
        state.apply(as_fact(item), now_ms, **kw)
    return state


def features_of(
    state: CustomerState,
    now_ms: int = T0_MS,
    thresholds: SegmentThresholds | None = None,
    half_life_days: float = 14.0,
    home_timezone: str = "UTC",
) -> CustomerFeatures:
    return build_features(
        dict(state.profile),
        dict(state.windows),
        list(state.recent),
        now_ms,
        contacts=dict(state.contacts),
        thresholds=thresholds or SegmentThresholds(),
        half_life_days=half_life_days,
        home_timezone=home_timezone,
    )
