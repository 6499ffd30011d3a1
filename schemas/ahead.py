"""What is dated ahead of now is refused: a touchpoint or an outcome more than the clock
skew allowed (``MOMENTS_MAX_FUTURE_SKEW_S``) in the future. A mis-dated touchpoint would
push every rolling window into the future; a mis-dated outcome would tell whoever reads
the topic (the lift report, a reader of outcomes) that an offer was taken in years to
come."""

from __future__ import annotations

from datetime import datetime, timedelta

from schemas.errors import InvalidEvent
from schemas.outcomes import Outcome
from schemas.touchpoints import Touchpoint


def not_ahead(item: Touchpoint | Outcome, latest: datetime, max_future: timedelta) -> None:
    """Raise :class:`InvalidEvent` for ``item`` dated after ``latest`` (now plus the clock
    skew allowed), naming its ``ts``.

    >>> from datetime import UTC
    >>> shown = Outcome(decision_id="d", customer_id="c", offer_id="o", outcome="shown",
    ...                 ts=datetime(9998, 12, 31, tzinfo=UTC))
    >>> try:
    ...     not_ahead(shown, datetime(2026, 12, 6, tzinfo=UTC), timedelta(minutes=15))
    ... except InvalidEvent as exc:
    ...     exc.reason
    'ts 9998-12-31T00:00:00+00:00 is more than 0:15:00 in the future - at `$.ts`'
    """
    if item.ts > latest:
        kind = item.kind if isinstance(item, Touchpoint) else "unknown"
        raise InvalidEvent(
            f"ts {item.ts.isoformat()} is more than {max_future} in the future - at `$.ts`",
            kind,
        )
