"""Calls made from alert cards: contacts, counted against the customer's call caps.

An agent who calls a customer from a card (a retention call, a save desk's call back)
contacts them as one of Moments' call offers would. The contact centre's telephony says
so by sending the outbound call's ``started`` touchpoint with the card's
``intervention_id``: the call is then counted on the call channel (the day's and the
week's contacts, its last contact), once however often the touchpoint is applied, so
that Moments makes no call offer past the caps and no card asks for another call
they would not allow. An outbound call with no card is not counted: it may be the call
of one of Moments' own call offers, counted when it was decided.

>>> from datetime import UTC, datetime
>>> import msgspec
>>> from schemas import Call
>>> call = Call(event_id="e1", customer_id="c1", ts=datetime(2026, 12, 7, tzinfo=UTC),
...     status="started", direction="outbound", reason="sales", intervention_id="i1")
>>> [(f.fact_id, f.contact) for f in card_call_facts(call)]
[('o:e1', True)]
>>> card_call_facts(msgspec.structs.replace(call, intervention_id=None))
[]
"""

from __future__ import annotations

from feature_store.contact_facts import channel_contact
from feature_store.facts import Fact, ts_ms
from schemas import Call, TouchpointEvent


def from_a_card(event: TouchpointEvent) -> bool:
    """Whether ``event`` starts an outbound call made from an alert card (one that names
    no card, with a blank ``intervention_id``, is not).

    >>> from datetime import UTC, datetime
    >>> def call(**fields: str) -> Call:
    ...     return Call(event_id="e1", customer_id="c1", ts=datetime(2026, 12, 7, tzinfo=UTC),
    ...                 reason="sales", **{"status": "started", "direction": "outbound", **fields})
    >>> from_a_card(call(intervention_id="i1")), from_a_card(call(intervention_id=" "))
    (True, False)
    >>> from_a_card(call(intervention_id="i1", direction="inbound"))  # they called
    False
    >>> from_a_card(call(intervention_id="i1", status="ended"))  # counted as it started
    False
    """
    return (
        isinstance(event, Call)
        and event.status == "started"
        and event.direction == "outbound"
        and bool(event.intervention_id and not event.intervention_id.isspace())
    )


def card_call_facts(event: TouchpointEvent) -> list[Fact]:
    """The contact a call from a card makes (none for any other touchpoint): applied
    beside the touchpoint, idempotent by the touchpoint's id."""
    if not from_a_card(event):
        return []
    ms = ts_ms(event.ts)
    updates = tuple(channel_contact("call", str(ms)))
    return [Fact(f"o:{event.event_id}", event.customer_id, ms, updates, contact=True)]
