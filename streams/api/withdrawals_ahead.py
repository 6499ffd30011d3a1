"""A withdrawal the API accepts is applied to Redis at once, ahead of the worker.

``POST /v1/events`` writes touchpoints to Kafka, and only a worker applies them to the
store, which the API's own recommendations read: a customer who withdrew consent kept
being offered on the channel for as long as the workers were behind (down, rebalancing,
lagging; 17 answers of 30 asked for a millisecond after the 202 still made offers by
email). After the write to Kafka, the withdrawal fields alone of each withdrawal are
applied too (:func:`feature_store.withdrawals.withdrawal_fact`: an id of their own, nothing
counted, ranked by their time, kept beside the tombstone of an erased customer as any
withdrawal is), best effort: within :data:`WITHIN_S`, and not while Redis is known to be
away. The worker applies the whole touchpoint from Kafka all the same. A withdrawal dated
a placeholder time (the "zero" time of a producer that left it unset, the epoch) is
stamped with when the API received it, as a worker stamps it with the record's time, no
earlier (:mod:`agents.withdrawals_undated`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from agents.web_withdrawals import web_consent
from agents.withdrawals_undated import undated
from feature_store.facts import Fact
from feature_store.withdrawals import withdrawal_fact
from schemas import TouchpointEvent
from streams.api.server import Api

log = logging.getLogger(__name__)

WITHIN_S = 0.25  # how long the answer waits for them at most
WARN_EVERY_S = 60.0  # a failure is told at most this often per process
_told = [-WARN_EVERY_S]


def withdrawal_facts(events: Sequence[TouchpointEvent], received_ms: int) -> list[Fact]:
    """The withdrawal facts of those of ``events`` that withdraw, each stamped with its
    own time, or with ``received_ms`` where that is a placeholder (:func:`undated`).

    >>> from datetime import UTC, datetime
    >>> from feature_store.facts import ts_ms
    >>> from schemas import Consent
    >>> at = datetime(2026, 12, 6, tzinfo=UTC)
    >>> def withdrawal(ts):
    ...     return Consent(event_id="e", customer_id="c", ts=ts, channel="sms", granted=False)
    >>> [f.ts_ms == ts_ms(at) for f in withdrawal_facts(
    ...     [withdrawal(at), withdrawal(datetime(1, 1, 1, tzinfo=UTC))], ts_ms(at) + 5)]
    [True, False]
    """
    facts = []
    for event in events:
        stamp = received_ms if undated(event) else None
        fact = withdrawal_fact(event, stamp)
        if fact is not None:
            facts.append(fact)
    return facts


async def withdraw_now(api: Api, events: Sequence[TouchpointEvent], received_ms: int) -> None:
    """Apply the withdrawals among ``events`` (already written to Kafka, received at
    ``received_ms``) to Redis, and remember the web's for this process's fallbacks
    (whether Redis takes them or not)."""
    for event in events:
        if web_consent(event) is not None:
            api.web_withdrawals.saw(api.store.pseudonym(event.customer_id), event)
    facts = withdrawal_facts(events, received_ms)
    if not facts or api.outages.away("redis"):
        return
    try:
        await asyncio.wait_for(api.store.apply_facts(facts), WITHIN_S)
    except Exception as exc:  # the worker applies them from Kafka
        now = time.monotonic()
        if now - _told[0] >= WARN_EVERY_S:
            _told[0] = now
            log.warning("%d withdrawals not applied ahead of the workers (%s); they hold "
                        "once a worker applies them", len(facts), type(exc).__name__)  # fmt: skip
