"""Labels for customers who never come back (pure).

A pending churn-risk snapshot is normally labelled by the customer's next touchpoint
(:mod:`agents.risk_watch`). A customer who has gone quiet sends none, so a periodic sweep
labels their snapshot by the clock: positive once the quiet spell has lasted the lapse
period (see :func:`agents.risk_labels.label_by_clock`); still open otherwise. Without it the
model would only ever learn lapses from the customers who returned.

>>> from datetime import datetime, timezone
>>> from feature_store import PendingRisk
>>> day = 86_400_000
>>> quiet = PendingRisk("s1", '{"x": {"experience": 0.2}, "ts_ms": 0}', last_seen_ms=0)
>>> example = sweep_label(quiet, datetime.fromtimestamp(50 * day / 1000, timezone.utc))
>>> example.y, example.x
(True, {'experience': 0.2})
>>> sweep_label(quiet, datetime.fromtimestamp(20 * day / 1000, timezone.utc)) is None
True
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from agents.risk_labels import label_by_clock
from agents.risk_watch import decode_snapshot, example_id
from feature_store import PendingRisk
from feature_store.facts import ts_ms
from schemas.risk import RiskExample


def sweep_label(pending: PendingRisk, now: datetime) -> RiskExample | None:
    """The example the clock settles for ``pending`` at ``now``, or ``None`` (the quiet
    spell may yet become a lapse, or the snapshot cannot be read)."""
    try:
        stored = decode_snapshot(pending.snapshot)
    except msgspec.DecodeError:
        return None
    label = label_by_clock(stored, ts_ms(now), pending.last_seen_ms, seen_ms=pending.seen_ms)
    if label is None:
        return None
    return RiskExample(
        example_id=example_id(pending.subject, stored.ts_ms),
        x=stored.x,
        y=label,
        snapshot_ts=datetime.fromtimestamp(stored.ts_ms / 1000, tz=UTC),
        label_ts=now,
    )
