"""Contacts made within one batch of decisions, counted before they are recorded (pure).

A batch's decisions are recorded in Redis together, after they are sent; until then
the features read for the batch do not show them. When one customer has several
decision moments in a batch (a burst of page views, a backlog after an outage, several
requests answered together), each decision must count the offers shown by those before
it against the fatigue caps, the per-offer caps and the cool-downs, as it would once
they are recorded.

>>> from datetime import UTC, datetime
>>> from schemas import NextBestOffer, OfferScore
>>> made = NextBestOffer(decision_id="d1", customer_id="c1", ts=datetime(2026, 12, 1, tzinfo=UTC),
...     channel="email", trigger_event_id=None, control=False, model_version="m", reasons=[],
...     offers=[OfferScore(offer_id="book-club", score=1.0, propensity=1.0)])
>>> after = contacted(CustomerFeatures(), made)
>>> after.contact.shown_today, after.contact.offers_7d
({'email': 1}, {'book-club': 1})
"""

from __future__ import annotations

import msgspec

from feature_store import CustomerFeatures
from schemas import NextBestOffer


def contacted(features: CustomerFeatures, decision: NextBestOffer) -> CustomerFeatures:
    """``features`` as they will read once ``decision`` is recorded: what
    :func:`feature_store.offers_shown_fact` adds for a decision that showed offers."""
    if not decision.offers:
        return features
    c = features.contact
    channel, at = decision.channel, decision.ts
    offers = {o.offer_id for o in decision.offers}
    contact = msgspec.structs.replace(
        c,
        shown_today={**c.shown_today, channel: c.shown_today.get(channel, 0) + 1},
        shown_7d={**c.shown_7d, channel: c.shown_7d.get(channel, 0) + 1},
        offers_7d={**c.offers_7d, **{o: c.offers_7d.get(o, 0) + 1 for o in offers}},
        last_shown={**c.last_shown, **dict.fromkeys(offers, at)},
        last_contact={**c.last_contact, channel: at},
    )
    return msgspec.structs.replace(features, contact=contact)
