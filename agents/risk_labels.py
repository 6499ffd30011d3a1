"""Delayed labels for churn-risk snapshots: did the customer churn or lapse? (pure)

A *snapshot* of a customer's features is kept as a :class:`PendingSnapshot`; it becomes a
positive example when the customer churns (:func:`churn_signal`: cancel call, consent
withdrawn for ``all``, email unsubscribe) or lapses (``lapse_days`` without any touchpoint,
the quiet spell starting within the horizon) and a negative one once the horizon has passed
without either. :func:`label_for` decides this from the touchpoints the caller sees
(:mod:`agents.risk_watch`); :func:`label_by_clock` lets a periodic sweep settle the customers
who never come back (:mod:`agents.risk_sweep`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise

from schemas import Call, Consent, Email, TouchpointEvent

DAY_MS = 86_400_000
LAPSE_DAYS = 45
HORIZON_DAYS = 30
# A churn signal dated this little before the snapshot still labels it: the snapshot's
# touchpoint may come from a clock running fast (a worker takes touchpoints up to 15
# minutes ahead), or the call record arrive late; a cancellation that followed the
# snapshot's touchpoint must not be learned as "stayed".
SIGNAL_LEAD_MS = 15 * 60_000


@dataclass(frozen=True, slots=True)
class PendingSnapshot:
    """Features ``x`` as they were at ``ts_ms``, waiting for their label; ``event_id``:
    the touchpoint it was taken at (empty if unknown), which cannot label it; ``held``:
    the touchpoints dated up to ``SIGNAL_LEAD_MS`` before it that its features held
    already (a churn signal among them, come again, does not label it)."""

    x: dict[str, float]
    ts_ms: int
    event_id: str = ""
    held: tuple[str, ...] = ()


def churn_signal(event: TouchpointEvent) -> bool:
    """A call about cancelling (when it starts: its end is the same call, which must not
    count again, after the alert or the snapshot its start brought), consent withdrawn
    for ``all``, or an email unsubscribe."""
    match event:
        case Call(status="started", reason="cancel"):
            return True
        case Consent(channel="all", granted=False):
            return True
        case Email(action="unsubscribed"):
            return True
    return False


def _lapse_start(pending: PendingSnapshot, last_seen_ms: int | None) -> int:
    """Where the current quiet spell started, counted from the snapshot at the earliest."""
    return pending.ts_ms if last_seen_ms is None else max(last_seen_ms, pending.ts_ms)


def label_for(
    pending: PendingSnapshot,
    event_ts_ms: int,
    previous_last_seen_ms: int | None,
    *,
    churn: bool = False,
    churned_ms: Iterable[int] = (),
    signal_lead_ms: int = SIGNAL_LEAD_MS,
    horizon_days: float = HORIZON_DAYS,
    lapse_days: float = LAPSE_DAYS,
) -> bool | None:
    """The label a touchpoint at ``event_ts_ms`` gives ``pending``, or ``None`` if undecided.

    ``previous_last_seen_ms`` is the customer's last touchpoint before this one (the
    ``last_seen`` of the features read just before it), ``churn`` whether this touchpoint is a
    churn signal (see :func:`churn_signal`), ``churned_ms`` when the customer's other churn
    signals seen with it happened (their touchpoints in the same batch). Positive: a churn
    signal within the horizon after the snapshot, or a quiet spell of at least ``lapse_days``
    (from the previous touchpoint, or the snapshot if later, to this one) that started within
    the horizon. Negative: this touchpoint is past the horizon and neither happened. A
    touchpoint older than the snapshot decides nothing, nor does a churn signal more than
    ``signal_lead_ms`` older (0 for one that came before the snapshot was taken: its
    features hold it).

    >>> day = 86_400_000
    >>> pending = PendingSnapshot({"experience": 0.4}, ts_ms=0)
    >>> label_for(pending, 3 * day, 2 * day, churn=True)  # cancel call on day 3
    True
    >>> label_for(pending, 10 * day, 9 * day) is None  # an ordinary touchpoint: wait
    True
    >>> label_for(pending, 10 * day, 9 * day, churned_ms=[9 * day])  # after an unsubscribe
    True
    >>> label_for(pending, 70 * day, 20 * day)  # quiet from day 20 to day 70: lapsed
    True
    >>> label_for(pending, 31 * day, 29 * day)  # still active after the horizon
    False
    >>> late = PendingSnapshot({}, ts_ms=day)  # a click from a clock 14 minutes fast
    >>> label_for(late, day - 9 * 60_000, day - 3600_000, churn=True)  # cancel 9 min before
    True
    >>> label_for(late, day - 20 * 60_000, day - 3600_000, churn=True) is None
    True
    """
    horizon_end = pending.ts_ms + round(horizon_days * DAY_MS)
    signals = [*churned_ms, *([event_ts_ms] if churn else [])]
    if any(pending.ts_ms - signal_lead_ms <= at <= horizon_end for at in signals):
        return True
    if event_ts_ms < pending.ts_ms:
        return None
    start = _lapse_start(pending, previous_last_seen_ms)
    if start <= horizon_end and event_ts_ms - start >= lapse_days * DAY_MS:
        return True
    if event_ts_ms > horizon_end:
        return False
    return None


def lapse_among(
    pending: PendingSnapshot,
    seen_ms: Iterable[int],
    *,
    horizon_days: float = HORIZON_DAYS,
    lapse_days: float = LAPSE_DAYS,
) -> bool:
    """Whether two of the customer's touchpoints in a row (``seen_ms``: times of the ones
    the store lists, its newest) hold a lapse between them, one that started within the
    horizon: the one that ended it may have been one nobody watched (a survey answer, an
    email clicked), and the spell would be lost behind it. A spell before the oldest one
    listed is not known, and not taken for one.

    >>> day = 86_400_000
    >>> pending = PendingSnapshot({}, ts_ms=10 * day)
    >>> lapse_among(pending, [10 * day, 60 * day, 61 * day])  # back after 50 days
    True
    >>> lapse_among(pending, [60 * day, 61 * day]), lapse_among(pending, [10 * day, 40 * day])
    (False, False)
    """
    times = sorted(seen_ms)
    return any(
        label_for(pending, at, before, horizon_days=horizon_days, lapse_days=lapse_days) is True
        for before, at in pairwise(times)
    )


def label_by_clock(
    pending: PendingSnapshot,
    now_ms: int,
    last_seen_ms: int | None,
    *,
    seen_ms: Iterable[int] = (),
    horizon_days: float = HORIZON_DAYS,
    lapse_days: float = LAPSE_DAYS,
) -> bool | None:
    """For a periodic sweep with no touchpoint at ``now_ms``: settle the customers gone quiet.

    Positive once the quiet spell since ``last_seen_ms`` (or the snapshot) that started within
    the horizon has lasted ``lapse_days``, or a spell between the touchpoints ``seen_ms``
    (see :func:`lapse_among`) did; negative only if the customer was last seen after the
    horizon (the touchpoint then should have settled it); otherwise ``None``: the spell is
    still open and may yet become a lapse.

    >>> day = 86_400_000
    >>> pending = PendingSnapshot({}, ts_ms=0)
    >>> label_by_clock(pending, 40 * day, 10 * day) is None  # quiet for 30 days so far
    True
    >>> label_by_clock(pending, 56 * day, 10 * day)  # quiet for 46 days
    True
    >>> label_by_clock(pending, 70 * day, 60 * day)  # back on day 60, active since
    False
    >>> label_by_clock(pending, 70 * day, 60 * day, seen_ms=[5 * day, 10 * day, 60 * day])
    True
    """
    if lapse_among(pending, seen_ms, horizon_days=horizon_days, lapse_days=lapse_days):
        return True
    horizon_end = pending.ts_ms + round(horizon_days * DAY_MS)
    start = _lapse_start(pending, last_seen_ms)
    if start > horizon_end:
        return False
    if now_ms - start >= lapse_days * DAY_MS:
        return True
    return None
