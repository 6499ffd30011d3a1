"""A withdrawal sent with a placeholder time is honoured from when Moments received it
(pure).

A touchpoint dated the store's TTL (``MOMENTS_STORE_TTL_DAYS``) or longer ago is taken
as expired: nothing of it is applied but its withdrawal or grant, ranked by its own time
(``lua/apply.lua``). A withdrawal sent with a placeholder time, the "zero" time
(``0001-01-01T00:00:00Z``, which a Go or .NET producer that left it unset sends) or the
epoch (``1970-01-01T00:00:00Z``, a count left 0), lost to any grant the customer had
made: it was accepted with a 202 and ignored on every channel the customer had granted,
which under ``consent_required`` is every channel they can be reached on. Such a time
says nothing of when the customer withdrew; when Moments received it does. So its
withdrawal fields are applied as a fact of their own (``w:<event_id>``, as an API's or
one dated ahead), stamped with when Moments received the touchpoint
(:mod:`agents.received`: the Kafka record's time, or the API's receipt of it). Both are
in the record, so a rebuild stamps it alike. Any other time, however old (a CRM's
consent history imported now), is the customer's: such a withdrawal ranks by it, as
before, and a later grant of theirs still wins. A grant dated a placeholder time is not
applied (it is expired as before): withdrawals err on the side of not contacting.

>>> from datetime import UTC, datetime, timedelta
>>> from schemas import Consent
>>> received, zero = datetime(2026, 12, 6, 12, tzinfo=UTC), datetime(1, 1, 1, tzinfo=UTC)
>>> def consent(ts, granted):
...     return Consent(event_id="e", customer_id="c", ts=ts, channel="email", granted=granted)
>>> (fact,) = withdrawal_received(consent(zero, False), ts_ms(received))
>>> fact.fact_id, fact.updates, fact.ts_ms == ts_ms(received)
('w:e', (('latest', 'consent:email', '0'),), True)
>>> len(withdrawal_received(consent(datetime(1970, 1, 1, tzinfo=UTC), False), 1))
1
>>> withdrawal_received(consent(received - timedelta(days=730), False), ts_ms(received))
[]
>>> withdrawal_received(consent(zero, True), ts_ms(received))
[]
"""

from __future__ import annotations

from feature_store.facts import Fact, ts_ms
from feature_store.withdrawals import withdrawal_fact
from schemas import TouchpointEvent


def undated(event: TouchpointEvent) -> bool:
    """Whether ``event`` is dated a placeholder time, at or before the epoch (the "zero"
    time, the epoch itself): no time to rank a withdrawal by."""
    return ts_ms(event.ts) <= 0


def withdrawal_received(event: TouchpointEvent, received_ms: int) -> list[Fact]:
    """The withdrawal of ``event``, stamped ``received_ms``, when the event is
    :func:`undated`; none otherwise, and none for an event that withdraws nothing."""
    if not undated(event):
        return []
    fact = withdrawal_fact(event, received_ms)
    return [] if fact is None else [fact]
