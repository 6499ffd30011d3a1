"""The per-customer view read back from the store, as plain data."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from feature_store.updates import CONSENT_CHANNELS


class RecentTouchpoint(msgspec.Struct, frozen=True):
    ts: datetime
    type: str
    event_id: str


class CustomerFeatures(msgspec.Struct, frozen=True, kw_only=True):
    """What Moments knows about one customer (counts are lifetime, money in the currency)."""

    events: int = 0
    by_type: dict[str, int] = msgspec.field(default_factory=dict)
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    last_purchase: datetime | None = None
    purchases: int = 0
    spend: float = 0.0
    categories: dict[str, int] = msgspec.field(default_factory=dict)
    call_reasons: dict[str, int] = msgspec.field(default_factory=dict)
    emails: dict[str, int] = msgspec.field(default_factory=dict)
    negative_mentions: int = 0
    negative_reach: int = 0
    sentiment: float | None = None
    survey: float | None = None
    consent: dict[str, bool] = msgspec.field(default_factory=dict)
    recent: list[RecentTouchpoint] = msgspec.field(default_factory=list)

    def consents_to(self, channel: str) -> bool:
        """Consent is assumed until withdrawn (opt-out); a withdrawal always wins."""
        return self.consent.get(channel, True)

    def top_categories(self, n: int = 3) -> list[str]:
        ranked = sorted(self.categories.items(), key=lambda kv: (-kv[1], kv[0]))
        return [name for name, _ in ranked[:n]]


def _dt(ms: str | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(int(ms) / 1000, tz=UTC)


def _ratio(total: str | None, n: str | None) -> float | None:
    if not n or int(n) == 0:
        return None
    return int(total or 0) / 1000 / int(n)


def features_from_hash(profile: dict[str, str], recent: list[str]) -> CustomerFeatures:
    """Build :class:`CustomerFeatures` from the raw profile hash and recent list."""

    def prefixed(prefix: str) -> dict[str, int]:
        return {k[len(prefix) :]: int(v) for k, v in profile.items() if k.startswith(prefix)}

    def get_int(name: str) -> int:
        return int(profile.get(name, 0))

    consent = {
        ch: profile[f"consent:{ch}"] == "1" for ch in CONSENT_CHANNELS if f"consent:{ch}" in profile
    }
    items = []
    for item in recent:
        ms, kind, event_id = item.split("|", 2)
        items.append(RecentTouchpoint(datetime.fromtimestamp(int(ms) / 1000, UTC), kind, event_id))
    return CustomerFeatures(
        events=get_int("n"),
        by_type=prefixed("n:"),
        first_seen=_dt(profile.get("first_seen")),
        last_seen=_dt(profile.get("last_seen")),
        last_purchase=_dt(profile.get("last_purchase")),
        purchases=get_int("purchases"),
        spend=get_int("spend_cents") / 100,
        categories=prefixed("cat:"),
        call_reasons=prefixed("call_reason:"),
        emails=prefixed("email:"),
        negative_mentions=get_int("negative_mentions"),
        negative_reach=get_int("negative_reach"),
        sentiment=_ratio(profile.get("sentiment_milli"), profile.get("sentiment_n")),
        survey=_ratio(profile.get("survey_milli"), profile.get("survey_n")),
        consent=consent,
        recent=items,
    )
