"""Pure mapping from a touchpoint to the feature updates it makes.

The Lua script applies these updates in Redis; :func:`apply_updates` applies them to a
plain dict with the same semantics, which is the reference the tests compare against.
Money is kept in cents and sentiment in thousandths so that every sum is exact.

>>> from datetime import datetime, timezone
>>> from schemas import Purchase
>>> ts = datetime(2026, 11, 23, tzinfo=timezone.utc)
>>> p = Purchase(event_id="e1", customer_id="c1", ts=ts, order_id="o1", amount=12.5,
...              currency="EUR", categories=["books"])
>>> state: dict[str, str] = {}
>>> apply_updates(state, feature_updates(p), ts_ms(p))
>>> state["spend_cents"], state["n:purchase"], state["cat:books"]
('1250', '1', '1')
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

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

Op = Literal["incr", "max", "min", "latest"]
Update = tuple[Op, str, str]
CONSENT_CHANNELS = ("email", "sms", "call", "web")


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MILLISECOND = timedelta(milliseconds=1)


def ts_ms(event: TouchpointEvent) -> int:
    """The event's ts in whole milliseconds since the epoch (exact, no float rounding)."""
    return (event.ts - EPOCH) // MILLISECOND


def _milli(x: float) -> str:
    return str(round(x * 1000))


def feature_updates(event: TouchpointEvent) -> list[Update]:
    """The updates one event makes to its customer's profile hash."""
    ms = str(ts_ms(event))
    updates: list[Update] = [
        ("incr", "n", "1"),
        ("incr", f"n:{event.kind}", "1"),
        ("min", "first_seen", ms),
        ("max", "last_seen", ms),
    ]
    add = updates.append
    match event:
        case WebClick(category=category):
            if category:
                add(("incr", f"cat:{category}", "1"))
        case Call(status="started", direction=direction, reason=reason):
            add(("incr", f"call:{direction}", "1"))
            add(("incr", f"call_reason:{reason}", "1"))
        case Call(status="ended", sentiment=sentiment):
            if sentiment is not None:
                add(("incr", "sentiment_milli", _milli(sentiment)))
                add(("incr", "sentiment_n", "1"))
        case Email(action=action):
            add(("incr", f"email:{action}", "1"))
        case SocialMention(sentiment=sentiment, reach=reach):
            add(("incr", "sentiment_milli", _milli(sentiment)))
            add(("incr", "sentiment_n", "1"))
            if sentiment < 0:
                add(("incr", "negative_mentions", "1"))
                add(("incr", "negative_reach", str(reach or 0)))
        case Purchase(amount=amount, categories=categories):
            add(("incr", "purchases", "1"))
            add(("incr", "spend_cents", str(round(amount * 100))))
            add(("max", "last_purchase", ms))
            for category in sorted(set(categories)):
                add(("incr", f"cat:{category}", "1"))
        case Survey(score=score, scale=scale):
            normalised = (score - 1) / 4 if scale == "csat5" else score / 10
            add(("incr", "survey_milli", _milli(normalised)))
            add(("incr", "survey_n", "1"))
        case Consent(channel=channel, granted=granted):
            channels = CONSENT_CHANNELS if channel == "all" else (channel,)
            for name in channels:
                add(("latest", f"consent:{name}", "1" if granted else "0"))
    return updates


def recent_item(event: TouchpointEvent) -> str:
    """How the event appears in the customer's recent-touchpoints list (no customer id)."""
    return f"{ts_ms(event)}|{event.kind}|{event.event_id}"


def apply_updates(state: dict[str, str], updates: list[Update], event_ts_ms: int) -> None:
    """Apply updates to a plain dict exactly as ``lua/apply.lua`` does in Redis."""
    for op, field, value in updates:
        current = state.get(field)
        if op == "incr":
            state[field] = str(int(current or 0) + int(value))
        elif op in ("max", "min"):
            if (
                current is None
                or (op == "max" and float(value) > float(current))
                or (op == "min" and float(value) < float(current))
            ):
                state[field] = value
        else:
            stamp = state.get(field + "@")
            newer = stamp is None or event_ts_ms > int(stamp)
            if not newer and event_ts_ms == int(stamp or 0):
                newer = value < (current or value)
            if newer:
                state[field] = value
                state[field + "@"] = str(event_ts_ms)
