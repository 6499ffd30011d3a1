"""Fallback answers: the catalogue's safe default offers, for when a decision cannot be
taken in time (Redis or the model slow or down).

A fallback reads nothing from Redis, so it cannot know the customer's consent (but for a
web withdrawal the same API process took: :mod:`agents.web_withdrawals`): it makes
offers only on the web, where the customer came to Moments' users and the defaults are
the same for everyone (unless the catalogue's ``consent_required`` names the web); on
the channels that reach out (email, text, call) it offers nothing
(``suppressed:consent_unknown:<channel>``). It still keeps the hold-out (a
customer in the control group gets no offer, so that the measured lift over the control
group is not blurred by the moments Redis was down), the catalogue's quiet hours, and
the fatigue caps, cool-downs and per-offer weekly caps by what the fallbacks of this
process showed the customer (``shown``, from
:class:`agents.fallback_contacts.FallbackContacts`), with the contact policy's reasons:
a default offer cooling down or at its weekly cap gives its place to the next one. Its
first offer is logged with propensity 1 (it is put first for certain), the others 0, as
a deterministic policy's are.

>>> from datetime import UTC, datetime
>>> from schemas import ContactRules, Offer
>>> tips = Offer(offer_id="tips", title="Tips", channels=["web"])
>>> catalogue = OfferCatalogue(version="v1", offers=[tips], default_offers=["tips"])
>>> now = datetime(2026, 12, 1, tzinfo=UTC)
>>> answer = fallback_decision("c-1", "web", 3, "latency_budget", catalogue,
...                            ControlGroup("salt", 0.0), now)
>>> [o.offer_id for o in answer.offers], answer.fallback, answer.reasons
(['tips'], True, ['fallback:latency_budget'])
>>> answer.offers[0].propensity
1.0
>>> fallback_decision("c-1", "email", 3, "store_unavailable", catalogue,
...                   ControlGroup("salt", 0.0), now).reasons
['fallback:store_unavailable', 'suppressed:consent_unknown:email']
>>> held_out = fallback_decision("c-1", "web", 3, "latency_budget", catalogue,
...                              ControlGroup("salt", 100.0), now)
>>> held_out.offers, held_out.control, held_out.reasons
([], True, ['fallback:latency_budget', 'control_group'])
>>> night = OfferCatalogue(version="v2", offers=[tips], default_offers=["tips"],
...     contact_policy=ContactRules(quiet_hours={"web": "23:00-06:00"}))
>>> fallback_decision("c-1", "web", 3, "store_unavailable", night,
...                   ControlGroup("salt", 0.0), now).reasons
['fallback:store_unavailable', 'suppressed:quiet_hours:web']
>>> shut = OfferCatalogue(version="v3", offers=[tips], default_offers=["tips"],
...     contact_policy=ContactRules(daily_caps={"web": 0}))
>>> fallback_decision("c-1", "web", 3, "store_unavailable", shut,
...                   ControlGroup("salt", 0.0), now).reasons
['fallback:store_unavailable', 'suppressed:fatigue:web:day']
>>> opt_in = OfferCatalogue(version="v4", offers=[tips], default_offers=["tips"],
...     contact_policy=ContactRules(consent_required=["web"]))
>>> fallback_decision("c-1", "web", 3, "store_unavailable", opt_in,
...                   ControlGroup("salt", 0.0), now).reasons
['fallback:store_unavailable', 'suppressed:consent_unknown:web']

A customer this process saw withdraw their consent to the web gets nothing there:

>>> fallback_decision("c-1", "web", 3, "error", catalogue, ControlGroup("salt", 0.0), now,
...                   withdrawn=True).reasons
['fallback:error', 'suppressed:consent:web']

Once shown, ``tips`` cools down for a day and gives its place to ``club``; the web's
daily cap of 2 then stops both:

>>> from agents.fallback_contacts import FallbackContacts
>>> club = Offer(offer_id="club", title="Club", channels=["web"])
>>> tips = Offer(offer_id="tips", title="Tips", channels=["web"], cooldown_s=86400)
>>> capped = OfferCatalogue(version="v5", offers=[tips, club], default_offers=["tips", "club"],
...     contact_policy=ContactRules(daily_caps={"web": 2}, weekly_caps={"web": 3}))
>>> ledger, answers = FallbackContacts(), []
>>> for _ in range(3):
...     shown = ledger.history("c-1", now, "UTC")
...     answer = fallback_decision("c-1", "web", 1, "latency_budget", capped,
...                                ControlGroup("salt", 0.0), now, shown)
...     ledger.record(answer)
...     answers.append(([o.offer_id for o in answer.offers], answer.reasons[1:]))
>>> answers  # doctest: +NORMALIZE_WHITESPACE
[(['tips'], []), (['club'], ['suppressed:cooldown:tips']),
 ([], ['suppressed:fatigue:web:day'])]
"""

from __future__ import annotations

import uuid
from datetime import datetime

from agents.contact_policy import fatigue, within_offer_caps
from agents.control_group import ControlGroup
from feature_store import ContactHistory
from schemas import NextBestOffer, OfferCatalogue, OfferScore

# channels where a fallback may make offers without knowing the customer's consent: the
# customer is on the site; an email, a text or a call reaches out to them
WITHOUT_CONSENT = frozenset({"web"})
NOTHING_SHOWN = ContactHistory()


def fallback_decision(
    customer_id: str,
    channel: str,
    limit: int,
    reason: str,
    catalogue: OfferCatalogue,
    control_group: ControlGroup,
    now: datetime,
    shown: ContactHistory = NOTHING_SHOWN,
    withdrawn: bool = False,
) -> NextBestOffer:
    """The fallback answer for ``customer_id`` on ``channel``, marked ``fallback``;
    ``shown``: what this process's fallbacks showed the customer
    (:class:`agents.fallback_contacts.FallbackContacts`); ``withdrawn``: the process
    saw the customer withdraw their consent to ``channel``
    (:class:`agents.web_withdrawals.WebWithdrawals`), which it then offers nothing on."""
    control = control_group.contains(customer_id)
    rules = catalogue.contact_policy
    assumed = channel in WITHOUT_CONSENT and not rules.needs_grant(channel)
    unknown = (
        None if control
        else f"consent:{channel}" if withdrawn
        else None if assumed
        else f"consent_unknown:{channel}"
    )  # fmt: skip
    quiet = not control and not unknown and rules.quiet_at(channel, now)
    # a cap of 0, or one the fallbacks already reached
    tired = None if control or unknown or quiet else fatigue(channel, shown, rules)
    shut = control or unknown or quiet or tired
    defaults = [] if shut else catalogue.defaults_for(channel, now, len(catalogue.default_offers))
    allowed, dropped = within_offer_caps(defaults, shown, now)  # cool-downs, weekly caps
    offers = allowed[:limit]
    return NextBestOffer(
        decision_id=str(uuid.uuid4()),
        customer_id=customer_id,
        ts=now,
        channel=channel,
        trigger_event_id=None,
        offers=[
            OfferScore(offer_id=o.offer_id, score=0.0, propensity=1.0 if i == 0 else 0.0)
            for i, o in enumerate(offers)
        ],
        control=control,
        model_version="fallback",
        reasons=[f"fallback:{reason}"]
        + (["control_group"] if control else [])
        + ([f"suppressed:{unknown}"] if unknown else [])
        + ([f"suppressed:quiet_hours:{channel}"] if quiet else [])
        + ([tired] if tired else [])
        + dropped,
        fallback=True,
        catalogue_version=catalogue.version,
    )
