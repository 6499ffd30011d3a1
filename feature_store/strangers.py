"""Strangers: customers Moments knows only by its own decisions.

A web recommendation asked for an id no touchpoint has named (an anonymous visitor's
cookie id, or an id made up by whoever holds a web page's key) leaves the keys of its
decision and contact behind. Such a customer's keys live ``MOMENTS_STRANGER_TTL_DAYS`` (a day by
default) from Moments' latest contact, not the contact-only TTL (30 days) of someone the
business mailed: else a key with the ``recommend`` scope alone could fill Redis with
made-up customers at its rate limit, each kept a month. Anything the customer did, an
email the business sent them, a withdrawal kept for them, or an offer Moments made them
by email, text or call (the first one already: the business reaches them there, and that
channel's weekly caps and cool-downs read a week of their contacts) makes them known.
``lua/apply.lua`` and ``lua/decision.lua`` name the same fields.

A key with the ``recommend`` scope bound to no channel can still keep a made-up id 30
days by asking for ``channel=email`` (sms, call); a web page's key (public) bound to
``web`` (``recommend=web`` in ``MOMENTS_API_KEYS``) is refused those channels
(:func:`streams.api.auth.check_channel`, docs/known-limits.md).
"""

from __future__ import annotations

from collections.abc import Mapping

from feature_store.facts import BUSINESS_EMAIL_ACTIONS, WITHDRAWAL_FIELDS
from schemas.catalogue import OFFER_CHANNELS

# A profile holding any of these fields is of someone Moments knows beyond its own
# decisions: their activity count, an email the business sent them (delivered or
# bounced), a withdrawal (kept apart, and copied into a profile made anew), an offer
# Moments made them on a channel other than the web (its count, contact_facts.offers_shown_fact).
OUTBOUND_SHOWN = tuple(f"shown:{channel}" for channel in OFFER_CHANNELS if channel != "web")
KNOWN_BY = (
    "n",
    *(f"email:{a}" for a in sorted(BUSINESS_EMAIL_ACTIONS)),
    *WITHDRAWAL_FIELDS,
    *OUTBOUND_SHOWN,
)


def is_stranger(profile: Mapping[str, object]) -> bool:
    """Whether a profile (its fields; none for a customer without one) is a stranger's.

    >>> is_stranger({}), is_stranger({"shown:web": "3"}), is_stranger({"n": "1"})
    (True, True, False)
    >>> is_stranger({"email:bounced": "1"}), is_stranger({"consent:email": "0"})
    (False, False)
    >>> is_stranger({"shown:web": "2", "shown:email": "1"}), is_stranger({"shown:sms": "1"})
    (False, False)
    """
    return not any(f in profile for f in KNOWN_BY)


def no_activity_life(profile: Mapping[str, object], contact_only: int, stranger: int) -> int:
    """How long the keys of a customer with no activity of their own live from Moments'
    latest contact (in the unit the two TTLs are given in): a stranger's the stranger TTL
    (never beyond the contact-only one), anyone else's the contact-only TTL.

    >>> no_activity_life({}, 30 * 86400, 86400)
    86400
    >>> no_activity_life({"email:sent": "1"}, 30 * 86400, 86400)
    2592000
    """
    return min(stranger, contact_only) if is_stranger(profile) else contact_only
