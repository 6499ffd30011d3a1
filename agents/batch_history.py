"""A customer's recent touchpoints as a batch's decisions need them: the store keeps only
the newest few, so a burst of one customer's touchpoints in a batch (a long web session
read at once, a bulk import) pushes out the touchpoint before it, from which a lapse or
a return is counted. Completed with the batch's own touchpoints and the newest one the
store held before the batch."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from feature_store import CustomerFeatures, RecentTouchpoint, recent_touchpoint_of
from schemas import TouchpointEvent


def with_batch_history(
    features: CustomerFeatures,
    newest_before: RecentTouchpoint | None,
    batch: Sequence[TouchpointEvent],
) -> CustomerFeatures:
    """``features`` whose recent touchpoints (newest first) also hold ``batch`` (the
    customer's touchpoints of the batch, applied) and ``newest_before`` (their newest
    before it), where the store's list lost them; the same ``features`` where it did not.

    >>> from datetime import UTC, datetime, timedelta
    >>> from schemas import WebClick
    >>> at = datetime(2026, 12, 1, tzinfo=UTC)
    >>> clicks = [WebClick(event_id=f"c{n}", customer_id="c", ts=at + timedelta(seconds=n),
    ...                    page="/") for n in range(25)]
    >>> kept = [recent_touchpoint_of(c) for c in reversed(clicks[5:])]  # the newest 20
    >>> before = RecentTouchpoint(at - timedelta(days=120), "purchase", "p")
    >>> history = with_batch_history(CustomerFeatures(recent=kept), before, clicks).recent
    >>> len(history), history[-2].event_id, history[-1].event_id
    (26, 'c0', 'p')
    """
    held = {r.event_id for r in features.recent}
    missing = [r for r in (newest_before, *map(recent_touchpoint_of, batch)) if r is not None]
    missing = [r for r in missing if r.event_id not in held]
    if not missing:
        return features
    found = {r.event_id: r for r in (*features.recent, *missing)}
    recent = sorted(found.values(), key=lambda r: (r.ts, r.event_id), reverse=True)
    return msgspec.structs.replace(features, recent=recent)
