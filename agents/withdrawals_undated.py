"""A withdrawal dated the store's lifetime or longer before Moments received it is
honoured from when it was received (pure).

A touchpoint dated the store's TTL (``MOMENTS_STORE_TTL_DAYS``) or longer ago is taken
as expired: nothing of it is applied but its withdrawal or grant, ranked by its own time
(``lua/apply.lua``). A withdrawal so dated lost to any grant the customer had made: one
sent with the "zero" time (``0001-01-01T00:00:00Z``, the time a Go or .NET producer that
left it unset sends; the epoch, a count left 0) was accepted with a 202 and ignored on
every channel the customer had granted, which under ``consent_required`` is every
channel they can be reached on. Such a time says nothing of when the customer withdrew;
when Moments received it does. So its withdrawal fields are applied as a fact of their
own (``w:<event_id>``, as an API's or one dated ahead), stamped with when Moments
received the touchpoint: the Kafka record's timestamp (when it was sent), or the API's
receipt of it. Both are in the record, so a rebuild stamps it alike. A grant so dated is
not applied (it is expired as before): withdrawals err on the side of not contacting.

>>> from datetime import UTC, datetime
>>> from feature_store.facts import DAY_MS
>>> from schemas import Consent
>>> received, zero = datetime(2026, 12, 6, 12, tzinfo=UTC), datetime(1, 1, 1, tzinfo=UTC)
>>> def consent(ts, granted):
...     return Consent(event_id="e", customer_id="c", ts=ts, channel="email", granted=granted)
>>> (fact,) = withdrawal_received(consent(zero, False), ts_ms(received), 400 * DAY_MS)
>>> fact.fact_id, fact.updates, fact.ts_ms == ts_ms(received)
('w:e', (('latest', 'consent:email', '0'),), True)
>>> withdrawal_received(consent(received, False), ts_ms(received), 400 * DAY_MS)
[]
>>> withdrawal_received(consent(zero, True), ts_ms(received), 400 * DAY_MS)
[]
"""

from __future__ import annotations

from feature_store.facts import Fact, ts_ms, withdrawal_fact
from schemas import TouchpointEvent


def undated(event: TouchpointEvent, received_ms: int, lifetime_ms: int) -> bool:
    """Whether ``event`` is dated ``lifetime_ms`` (the store's TTL) or longer before
    ``received_ms``, when Moments received it: too old a time to rank a withdrawal by."""
    return received_ms - ts_ms(event.ts) >= lifetime_ms


def withdrawal_received(event: TouchpointEvent, received_ms: int, lifetime_ms: int) -> list[Fact]:
    """The withdrawal of ``event``, stamped ``received_ms``, when the event is dated
    ``lifetime_ms`` or longer before it; none otherwise, and none for an event that
    withdraws nothing."""
    if not undated(event, received_ms, lifetime_ms):
        return []
    fact = withdrawal_fact(event, received_ms)
    return [] if fact is None else [fact]
