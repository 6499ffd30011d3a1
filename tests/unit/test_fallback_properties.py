"""Properties of fallback answers (agents/fallback_offers.py), given when a decision cannot
be taken in time: knowing nothing of the customer, a fallback shows only the
catalogue's safe defaults where no consent is needed, and never shows what the full
contact policy would refuse to anyone for the channel, the hour or a closed cap."""

from __future__ import annotations

from datetime import datetime

import msgspec
from hypothesis import given, note, settings
from hypothesis import strategies as st

from agents.contact_policy import ContactPolicy
from agents.fallback_offers import fallback_decision
from schemas import Offer, OfferCatalogue
from tests.unit.decision_strategies import NOBODY, catalogues, channels, instants, quiet_spans

QUICK = settings(max_examples=50, deadline=None)
# safe defaults for every customer: one on the web and by email, one by email only
TIPS = Offer(offer_id="tips", title="Tips", channels=["web", "email"])
LETTER = Offer(offer_id="letter", title="Letter", channels=["email"])


@st.composite
def catalogues_with_defaults(draw: st.DrawFn) -> OfferCatalogue:
    """A catalogue whose default offers hold ``TIPS`` and ``LETTER`` (at any place), so
    that a fallback has something it could show, and something it must not show on
    the web; half the time with quiet hours on the web."""
    catalogue = draw(catalogues())
    rules = catalogue.contact_policy
    if draw(st.booleans()):
        rules = msgspec.structs.replace(
            rules, quiet_hours={**rules.quiet_hours, "web": draw(quiet_spans)}
        )
    defaults = list(catalogue.default_offers)
    for safe in (TIPS, LETTER):
        defaults.insert(draw(st.integers(0, len(defaults))), safe.offer_id)
    return OfferCatalogue(
        version=catalogue.version,
        offers=[*catalogue.offers, TIPS, LETTER],
        default_offers=defaults,
        contact_policy=rules,
    )


@QUICK
@given(
    channel=channels, limit=st.integers(1, 6), catalogue=catalogues_with_defaults(), now=instants()
)
def test_a_fallback_shows_only_safe_defaults_where_no_consent_is_needed(
    channel: str, limit: int, catalogue: OfferCatalogue, now: datetime
) -> None:
    """A fallback cannot read consent: it offers nothing on email, text or call, nor on
    an opt-in web, in the web's quiet hours or on a closed channel. Otherwise it shows
    up to ``limit`` of the catalogue's default offers that are on the web and running
    now (none with a daily budget, which it cannot read), in the order listed there,
    logged first with propensity 1 and the others 0."""
    rules = catalogue.contact_policy
    decision = fallback_decision("c1", channel, limit, "store_unavailable", catalogue, NOBODY, now)
    note(repr(decision))
    shown = [o.offer_id for o in decision.offers]
    assert decision.fallback and decision.reasons[0] == "fallback:store_unavailable"
    if (
        channel != "web"
        or rules.needs_grant(channel)
        or rules.quiet_at(channel, now)
        or rules.closed(channel)
    ):
        assert shown == []
        return
    usable = [
        o.offer_id
        for o in catalogue.offers
        if o.offer_id in catalogue.default_offers and "web" in o.channels and o.available_at(now)
    ]
    assert shown == sorted(usable, key=catalogue.default_offers.index)[:limit]
    assert all(catalogue.by_id(o).daily_limit is None for o in shown)  # type: ignore[union-attr]
    assert [o.propensity for o in decision.offers] == [1.0, *[0.0] * len(shown)][: len(shown)]


@QUICK
@given(
    channel=channels, limit=st.integers(1, 6), catalogue=catalogues_with_defaults(), now=instants()
)
def test_a_fallback_never_shows_what_the_policy_refuses_for_the_channel_or_the_hour(
    channel: str, limit: int, catalogue: OfferCatalogue, now: datetime
) -> None:
    """When the full policy, screening a first contact, refuses the channel (quiet hours,
    a cap of 0, opt-in consent), the fallback shows nothing either: Redis being slow
    must not open a door the rules keep shut."""
    rules = catalogue.contact_policy
    verdict = ContactPolicy(NOBODY).screen("c1", channel, None, catalogue.offers, now, rules=rules)
    decision = fallback_decision("c1", channel, limit, "latency_budget", catalogue, NOBODY, now)
    note(f"{verdict}\n{decision}")
    per_offer = ("suppressed:cooldown:", "suppressed:cap:", "suppressed:budget:")
    if any(not r.startswith(per_offer) for r in verdict.reasons):
        assert decision.offers == []
