"""The caps a decision's contact must still be within when it is recorded (pure).

The contact policy screens offers against the counts one read of Redis showed; another
process deciding for the same customer at the same moment read the same counts, and
both would show their offers. The ceilings restate, as counts and times, the caps and
cool-downs the decision was screened against, so that the store checks them again
where the contact is recorded, atomically with it
(:class:`feature_store.facts.ContactCeilings`), and refuses the second.

>>> from datetime import UTC, datetime
>>> from schemas import ContactRules, NextBestOffer, Offer, OfferCatalogue, OfferScore
>>> catalogue = OfferCatalogue(version="v1",
...     offers=[Offer(offer_id="book-club", title="Book club", channels=["email"],
...                   cooldown_s=3600)],
...     contact_policy=ContactRules(daily_caps={"email": 1}, outbound_daily_cap=2))
>>> made = NextBestOffer(decision_id="d1", customer_id="c1",
...     ts=datetime(2026, 12, 1, 9, tzinfo=UTC), channel="email", trigger_event_id=None,
...     control=False, model_version="m", reasons=[],
...     offers=[OfferScore(offer_id="book-club", score=1.0, propensity=1.0)])
>>> ceilings = ceilings_of(made, catalogue, timezone="Australia/Sydney")
>>> for metrics, days, cap in ceilings.counts:
...     print(metrics, days, cap)
('shown:email',) 1 1
('shown:email',) 7 3
('shown:email', 'shown:sms', 'shown:call') 1 2
>>> ceilings.timezone, ceilings_of(made, catalogue).timezone  # the customer's, else the catalogue's
('Australia/Sydney', 'UTC')
>>> field, latest = ceilings.cool_downs[0]  # shown last at 8:00 or earlier: an hour ago
>>> field, datetime.fromtimestamp(latest / 1000, UTC).time()
('last_shown:book-club', datetime.time(8, 0))
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import msgspec

from feature_store import ContactCeilings, Fact, offers_shown_fact
from feature_store.contact_days import contact_zone
from feature_store.facts import WITHDRAWAL_FIELDS, ts_ms
from schemas import NextBestOffer, OfferCatalogue
from schemas.contact_rules import OUTBOUND

NO_CAP = 10**9  # what ContactRules gives for a channel without a cap
# Rounds a decision is taken in at most, by a worker or the API, when the store keeps
# refusing its contact because other processes' contacts took the customer's caps meanwhile
MAX_ROUNDS = 3
# the reason of a decision stripped of its offers: other processes kept taking the
# customer's caps while it was decided again and again
CONTENDED = "suppressed:contact_contended"
_OUTBOUND_SHOWN = tuple(f"shown:{c}" for c in OUTBOUND)


def ceilings_of(
    decision: NextBestOffer,
    catalogue: OfferCatalogue,
    inbound: bool = False,
    timezone: str | None = None,
) -> ContactCeilings:
    """The caps :meth:`agents.contact_policy.ContactPolicy.screen` checked before
    ``decision`` showed its offers on its channel at its time (``inbound``: the customer
    reached out, so the outbound caps did not hold), over the days they counted: those
    of the customer's ``timezone`` (as their features told it), else the catalogue's."""
    rules, channel = catalogue.contact_policy, decision.channel
    counts: list[tuple[tuple[str, ...], int, int]] = []
    shown = (f"shown:{channel}",)
    for days, cap in ((1, rules.daily_cap(channel)), (7, rules.weekly_cap(channel))):
        if cap < NO_CAP:
            counts.append((shown, days, cap))
    if channel in OUTBOUND and not inbound:
        for days, cap in zip((1, 7), rules.outbound_caps(), strict=True):
            if cap < NO_CAP:
                counts.append((_OUTBOUND_SHOWN, days, cap))
    cool_downs: list[tuple[str, int]] = []
    at_ms = ts_ms(decision.ts)
    for offer_id in sorted({o.offer_id for o in decision.offers}):
        offer = catalogue.by_id(offer_id)
        if offer is None:  # not in this catalogue: nothing was checked for it
            continue
        if offer.max_per_week is not None:
            counts.append(((f"offer:{offer_id}",), 7, offer.max_per_week))
        if offer.cooldown_s:
            cool_downs.append((f"last_shown:{offer_id}", at_ms - offer.cooldown_s * 1000))
    days_of = contact_zone(timezone, rules.timezone)
    return ContactCeilings(tuple(counts), tuple(cool_downs), days_of, withdrawn_fields(channel))


def withdrawn_fields(channel: str) -> tuple[str, ...]:
    """The withdrawal fields that hold a contact on ``channel`` back (a withdrawal for
    ``all`` writes each channel's): its consent, and on email the subscription.

    >>> withdrawn_fields("email"), withdrawn_fields("web"), withdrawn_fields("social")
    (('consent:email', 'subscribed:email'), ('consent:web',), ())
    """
    fields = (f"consent:{channel}", *(["subscribed:email"] if channel == "email" else []))
    return tuple(f for f in fields if f in WITHDRAWAL_FIELDS)


def offers_shown_within(
    decided: Iterable[tuple[NextBestOffer, bool]],
    catalogue: OfferCatalogue,
    timezones: Mapping[str, str | None] | None = None,
) -> list[Fact]:
    """The contacts of (decision, inbound) pairs that showed offers, each with the
    ceilings it was decided within (``timezones``: each customer's, as the features
    decided on told it): the store refuses one that would break them."""
    zones = timezones or {}
    return [
        offers_shown_fact(d.decision_id, d.customer_id, d.channel,
                          [o.offer_id for o in d.offers], d.ts,
                          ceilings=ceilings_of(d, catalogue, inbound,
                                               zones.get(d.customer_id)) or None)
        for d, inbound in decided if d.offers
    ]  # fmt: skip


def contended(decision: NextBestOffer) -> NextBestOffer:
    """``decision`` showing nothing, once its contact was refused round after round."""
    return msgspec.structs.replace(decision, offers=[], reasons=[*decision.reasons, CONTENDED])
