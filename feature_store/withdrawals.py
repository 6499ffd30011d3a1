"""What a withdrawal (of consent, or of the email subscription) writes: kept beside the
tombstone after an erasure, and applied under an id of its own ahead of its touchpoint."""

from __future__ import annotations

from collections.abc import Sequence

from feature_store.facts import WITHDRAWAL_FIELDS, Fact, Update, touchpoint_updates, ts_ms
from schemas import TouchpointEvent


def withdraws(event: TouchpointEvent) -> bool:
    """Whether the touchpoint withdraws consent or unsubscribes from email: what Moments
    keeps honouring after the customer's erasure.

    >>> from datetime import datetime, timezone
    >>> from schemas import Consent
    >>> at = datetime(2026, 12, 5, tzinfo=timezone.utc)
    >>> withdraws(Consent(event_id="e", customer_id="c", ts=at, channel="sms", granted=False))
    True
    >>> withdraws(Consent(event_id="e", customer_id="c", ts=at, channel="sms", granted=True))
    False
    """
    return any(op == "latest" and field in WITHDRAWAL_FIELDS and value == "0"
               for op, field, value in touchpoint_updates(event))  # fmt: skip


def withdrawal_updates(updates: Sequence[Update]) -> tuple[Update, ...]:
    """Those of ``updates`` that withdraw (a withdrawal field set to ``"0"``): what a fact
    under an id applied before still writes (``lua/apply.lua``), and a withdrawal fact.

    >>> withdrawal_updates([("incr", "n", "1"), ("latest", "consent:sms", "0"),
    ...                     ("latest", "consent:web", "1")])
    (('latest', 'consent:sms', '0'),)
    """
    return tuple((op, field, value) for op, field, value in updates
                 if op == "latest" and field in WITHDRAWAL_FIELDS and value == "0")  # fmt: skip


def withdrawal_fact(event: TouchpointEvent, at_ms: int | None = None) -> Fact | None:
    """The withdrawal fields alone of a touchpoint that withdraws (``None`` for any other),
    under an id of their own (``w:<event_id>``), so that the touchpoint's own fact
    (``t:<event_id>``), applied later by a worker, is still applied in full, and counted
    once: this one counts nothing, and writes only ``latest`` fields, which rank by their
    time (an older grant cannot undo it; the same withdrawal again changes nothing).
    Stamped ``at_ms`` instead of the touchpoint's time when given (one dated ahead).

    >>> from datetime import datetime, timezone
    >>> from schemas import Consent
    >>> at = datetime(2026, 12, 5, tzinfo=timezone.utc)
    >>> fact = withdrawal_fact(Consent(event_id="e", customer_id="c", ts=at, channel="sms",
    ...                                granted=False))
    >>> fact.fact_id, fact.updates
    ('w:e', (('latest', 'consent:sms', '0'),))
    >>> withdrawal_fact(Consent(event_id="e", customer_id="c", ts=at, channel="sms",
    ...                         granted=True)) is None
    True
    """
    updates = withdrawal_updates(touchpoint_updates(event))
    if not updates:
        return None
    stamp = ts_ms(event.ts) if at_ms is None else at_ms
    return Fact(f"w:{event.event_id}", event.customer_id, stamp, updates)
