"""A withdrawal dated too far ahead is honoured now (pure).

A touchpoint dated more than the clock skew allowed ahead of the worker's clock is
dead-lettered and nothing of it applied (a mis-dated touchpoint would push every rolling
window into the future). A withdrawal of consent (or an email unsubscribe) was too, and
the customer kept being offered on the channel until someone re-drove the letter: a
producer whose clock runs fast, or that writes local time marked ``Z`` (an hour ahead in
CET), is common. Its letter is still written, for whoever watches them, but its
withdrawal fields are applied at once: honouring a withdrawal early is never unsafe. A
grant dated ahead is not applied: it is dead-lettered as before.

The withdrawal is stamped with the latest time the worker takes (its clock plus the skew
allowed), not its own: a withdrawal dated years ahead would otherwise outrank every grant
the customer makes until then. A grant dated more than the grant lead (15 minutes) after
that stamp lifts it; one dated before it does not.

>>> from datetime import UTC, datetime, timedelta
>>> from schemas import Consent
>>> now = datetime(2026, 12, 6, 12, tzinfo=UTC)
>>> ahead = Consent(event_id="e", customer_id="c", ts=now + timedelta(hours=1),
...                 channel="email", granted=False)
>>> (fact,) = withdrawal_now(ahead, now + timedelta(minutes=15))
>>> fact.fact_id, fact.updates, fact.ts_ms == ts_ms(now + timedelta(minutes=15))
('w:e', (('latest', 'consent:email', '0'),), True)
>>> withdrawal_now(Consent(event_id="g", customer_id="c", ts=now + timedelta(hours=1),
...                        channel="email", granted=True), now)
[]
"""

from __future__ import annotations

from datetime import datetime

from feature_store.facts import Fact, ts_ms
from feature_store.withdrawals import withdrawal_fact
from schemas import TouchpointEvent


def withdrawal_now(event: TouchpointEvent, latest: datetime) -> list[Fact]:
    """The withdrawal ``event`` (dated after ``latest``) makes, stamped ``latest``: none
    for a touchpoint that withdraws nothing."""
    fact = withdrawal_fact(event, ts_ms(min(event.ts, latest)))
    return [] if fact is None else [fact]
