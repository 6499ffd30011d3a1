"""The contact policy: who may be offered what, where and how often.

Pure: features and the catalogue in, the offers that may be made plus the reasons for
everything suppressed out. Every rule has its own reason code, so a CRM team can see
why a customer got nothing.

>>> from datetime import datetime, timezone
>>> from feature_store import CustomerFeatures
>>> policy = ContactPolicy(ControlGroup("salt", 0.0))
>>> verdict = policy.screen("c1", "web", CustomerFeatures(consent={"web": False}), [],
...                        datetime(2026, 11, 23, tzinfo=timezone.utc))
>>> verdict.allowed, verdict.reasons
([], ['suppressed:consent:web'])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec

from agents.control_group import ControlGroup
from agents.offer_budget import BudgetLedger
from feature_store import ContactHistory, CustomerFeatures
from schemas import ContactRules, NextBestOffer, Offer
from schemas.contact_rules import OUTBOUND

DEFAULT_RULES = ContactRules()


def segment_of(features: CustomerFeatures | None) -> str:
    """The customer's segment; ``"new"`` for a first contact."""
    return features.segment if features is not None else "new"


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: list[Offer]
    reasons: list[str]
    control: bool = False

    def opening_reasons(self, features: CustomerFeatures | None) -> list[str]:
        """The reasons every decision starts with: the segment, then what was suppressed."""
        return ([] if self.control else [f"segment:{segment_of(features)}"]) + self.reasons

    def nothing_left(self, offers: Sequence[object]) -> bool:
        """No offer, and neither the control group nor a suppression says why."""
        return not offers and not self.control and not self.reasons


@dataclass(frozen=True, slots=True)
class ContactPolicy:
    control_group: ControlGroup

    def avoids(self, features: CustomerFeatures, channel: str) -> bool:
        """Channels the customer has turned away from: never push them there."""
        if channel == "email":
            unsubscribed = (
                features.emails.get("unsubscribed", 0) > 0  # kept before the flag was
                if features.email_subscribed is None
                else not features.email_subscribed
            )
            return unsubscribed or features.emails.get("bounced", 0) >= 2
        return False

    def turned_away(
        self,
        features: CustomerFeatures,
        channel: str,
        rules: ContactRules = DEFAULT_RULES,
        inbound: bool = False,
    ) -> str | None:
        """Why the customer may be offered nothing on ``channel`` whatever the offer or
        the day: consent withdrawn (or, where the channel asks for a grant before Moments
        reaches out, never given), or a channel they turned away from; ``None`` if not."""
        # opt-in asks for consent before Moments reaches out; a caller reached out to us
        opt_in = rules.needs_grant(channel) and not inbound
        if not features.consents_to(channel, granted_only=opt_in):
            unknown = channel not in features.consent  # opt-in, and never granted
            return f"suppressed:consent{'_unknown' if unknown else ''}:{channel}"
        if self.avoids(features, channel):
            return f"suppressed:channel_avoided:{channel}"
        return None

    def still_allowed(
        self,
        decision: NextBestOffer,
        features: CustomerFeatures,
        rules: ContactRules = DEFAULT_RULES,
        inbound: bool = False,
    ) -> NextBestOffer:
        """A decision taken earlier and sent only now, as the customer's ``features`` now
        allow: without its offers (and saying why) once they withdrew their consent to
        its channel or turned away from it; as it was otherwise.

        >>> from datetime import datetime, timezone
        >>> from feature_store import CustomerFeatures
        >>> from schemas import OfferScore
        >>> taken = NextBestOffer(decision_id="d1", customer_id="c1", channel="email",
        ...     ts=datetime(2026, 11, 23, tzinfo=timezone.utc), trigger_event_id="e1",
        ...     offers=[OfferScore(offer_id="tips", score=0.4, propensity=1.0)],
        ...     reasons=["segment:new"])
        >>> policy = ContactPolicy(ControlGroup("salt", 0.0))
        >>> now = policy.still_allowed(taken, CustomerFeatures(consent={"email": False}))
        >>> now.offers, now.reasons
        ([], ['segment:new', 'suppressed:consent:email'])
        >>> policy.still_allowed(taken, CustomerFeatures()) is taken
        True
        """
        if not decision.offers:
            return decision
        refused = self.turned_away(features, decision.channel, rules, inbound)
        if refused is None:
            return decision
        return msgspec.structs.replace(decision, offers=[], reasons=[*decision.reasons, refused])

    def screen(
        self,
        customer_id: str,
        channel: str,
        features: CustomerFeatures | None,
        offers: Sequence[Offer],
        now: datetime,
        budgets: BudgetLedger | None = None,
        rules: ContactRules = DEFAULT_RULES,
        inbound: bool = False,
    ) -> Verdict:
        """The offers that may be made; ``budgets`` holds the day's offer budgets and
        ``rules`` the catalogue's fatigue caps. ``inbound``: the customer reached out (is
        on the line): quiet hours, the outbound caps and opt-in consent, which keep
        Moments from reaching out, do not hold; a withdrawal and the channel's own caps
        do."""
        if self.control_group.contains(customer_id):
            return Verdict([], ["control_group"], control=True)
        timezone = features.timezone if features is not None else None
        if not inbound and rules.quiet_at(channel, now, timezone):  # first contacts too
            return Verdict([], [f"suppressed:quiet_hours:{channel}"])
        if features is None:  # a first contact: nothing shown yet, so only a cap of 0 holds
            features = FIRST_CONTACT
        refused = self.turned_away(features, channel, rules, inbound)
        if refused is not None:
            return Verdict([], [refused])
        tired = fatigue(channel, features.contact, rules, inbound)
        if tired is not None:
            return Verdict([], [tired])
        eligible = self._eligible(offers, channel, features.segment, features.purchases, now)
        allowed, reasons = within_offer_caps(eligible, features.contact, now)
        return _within_budget(allowed, reasons, budgets)

    @staticmethod
    def _eligible(
        offers: Sequence[Offer], channel: str, segment: str, purchases: int, now: datetime
    ) -> list[Offer]:
        return [
            o
            for o in offers
            if channel in o.channels
            and (not o.segments or segment in o.segments)
            and purchases >= o.min_purchases
            and o.available_at(now)
        ]


FIRST_CONTACT = CustomerFeatures()  # a customer Moments knows nothing of


def fatigue(
    channel: str, contact: ContactHistory, rules: ContactRules, inbound: bool = False
) -> str | None:
    """The fatigue cap the customer's ``contact`` history reached on ``channel`` (its
    own daily or weekly cap, or, reaching out, the outbound channels' together), as the
    reason a decision gives; ``None`` if none.

    >>> seen = ContactHistory(shown_today={"web": 2}, shown_7d={"web": 2, "email": 1})
    >>> rules = ContactRules(daily_caps={"web": 2}, outbound_weekly_cap=1)
    >>> fatigue("web", seen, rules), fatigue("sms", seen, rules), fatigue("sms", seen, rules, True)
    ('suppressed:fatigue:web:day', 'suppressed:fatigue:outbound:week', None)
    """
    if contact.shown_today.get(channel, 0) >= rules.daily_cap(channel):
        return f"suppressed:fatigue:{channel}:day"
    if contact.shown_7d.get(channel, 0) >= rules.weekly_cap(channel):
        return f"suppressed:fatigue:{channel}:week"
    if channel in OUTBOUND and not inbound:
        pressure = _outbound_pressure(contact, rules)
        if pressure is not None:
            return f"suppressed:fatigue:outbound:{pressure}"
    return None


def within_offer_caps(
    offers: Sequence[Offer], contact: ContactHistory, now: datetime
) -> tuple[list[Offer], list[str]]:
    """The ``offers`` the customer has not accepted lately (``after_accepted_s``), out of
    their cool-down (``cooldown_s``) and under their weekly cap (``max_per_week``) by
    the customer's ``contact`` history, and a reason for each other.

    >>> from datetime import UTC, datetime
    >>> now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    >>> tips = Offer(offer_id="tips", title="Tips", channels=["web"], cooldown_s=86400)
    >>> club = Offer(offer_id="club", title="Club", channels=["web"], max_per_week=1)
    >>> gold = Offer(offer_id="gold", title="Gold", channels=["web"])
    >>> midnight = datetime(2026, 12, 1, tzinfo=UTC)
    >>> seen = ContactHistory(offers_7d={"club": 1}, last_shown={"tips": midnight},
    ...                       accepted={"gold": datetime(2025, 1, 1, tzinfo=UTC)})
    >>> within_offer_caps([tips, club, gold], seen, now)
    ([], ['suppressed:cooldown:tips', 'suppressed:cap:club', 'suppressed:accepted:gold'])
    """
    allowed, reasons = [], []
    for offer in offers:
        if accepted_lately(offer, contact, now):
            reasons.append(f"suppressed:accepted:{offer.offer_id}")
            continue
        last = contact.last_shown.get(offer.offer_id)
        # the cool-down worked out only for an offer shown before (most were not)
        if (
            offer.cooldown_s
            and last is not None
            and now - last < timedelta(seconds=offer.cooldown_s)
        ):
            reasons.append(f"suppressed:cooldown:{offer.offer_id}")
            continue
        shown = contact.offers_7d.get(offer.offer_id, 0)
        if offer.max_per_week is not None and shown >= offer.max_per_week:
            reasons.append(f"suppressed:cap:{offer.offer_id}")
            continue
        allowed.append(offer)
    return allowed, reasons


def accepted_lately(offer: Offer, contact: ContactHistory, now: datetime) -> bool:
    """Whether the customer accepted ``offer`` (by their ``contact`` history) within its
    ``after_accepted_s`` before ``now``: for good when it is not set, never when it is 0.

    >>> from datetime import UTC, datetime
    >>> took = ContactHistory(accepted={"gold": datetime(2026, 11, 1, tzinfo=UTC)})
    >>> now = datetime(2026, 12, 1, tzinfo=UTC)
    >>> [accepted_lately(Offer(offer_id="gold", title="Gold", channels=["web"],
    ...                        after_accepted_s=s), took, now)
    ...  for s in (None, 0, 86_400, 60 * 86_400)]
    [True, False, False, True]
    >>> accepted_lately(Offer(offer_id="tips", title="Tips", channels=["web"]), took, now)
    False
    """
    at = contact.accepted.get(offer.offer_id)
    if at is None or offer.after_accepted_s == 0:
        return False
    return offer.after_accepted_s is None or now - at < timedelta(seconds=offer.after_accepted_s)


def _outbound_pressure(shown: ContactHistory, rules: ContactRules) -> str | None:
    """``"day"`` or ``"week"`` when the outbound channels together reached their cap."""
    day, week = rules.outbound_caps()
    if sum(shown.shown_today.get(c, 0) for c in OUTBOUND) >= day:
        return "day"
    if sum(shown.shown_7d.get(c, 0) for c in OUTBOUND) >= week:
        return "week"
    return None


def _within_budget(
    offers: list[Offer], reasons: list[str], budgets: BudgetLedger | None
) -> Verdict:
    if budgets is None or not budgets.limits:
        return Verdict(offers, reasons)
    allowed = []
    for offer in offers:
        if budgets.exhausted(offer.offer_id):
            reasons.append(f"suppressed:budget:{offer.offer_id}")
        else:
            allowed.append(offer)
    return Verdict(allowed, reasons)
