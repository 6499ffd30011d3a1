"""``moments check-catalogue``: validate an offer catalogue before publishing it, and say
what it will do (run it in the pipeline that publishes the file).

An invalid catalogue is refused with the fault (exit code 2), as workers and API
processes would refuse it. A valid one gets a summary and warnings about what is legal
but probably not meant: no fallback offer on the web (fallbacks offer nothing on the
channels that need consent, which they cannot read), a contact cap of 0, campaigns that
already ended.
"""

from __future__ import annotations

from datetime import datetime

from agents.fallback_offers import WITHOUT_CONSENT
from schemas import OfferCatalogue
from schemas.catalogue import OFFER_CHANNELS


def catalogue_report(catalogue: OfferCatalogue, now: datetime) -> tuple[list[str], list[str]]:
    """(summary lines, warnings) for a valid catalogue, as of ``now``.

    >>> from datetime import UTC, datetime
    >>> from schemas import Offer
    >>> shop = Offer(offer_id="shop", title="Shop", channels=["web"], daily_limit=100)
    >>> news = Offer(offer_id="news", title="News", channels=["web", "email"])
    >>> summary, warnings = catalogue_report(
    ...     OfferCatalogue(version="v7", offers=[shop, news], default_offers=["news"]),
    ...     datetime(2026, 12, 1, tzinfo=UTC))
    >>> print("\\n".join(summary))
    catalogue v7: 2 offers
    web: 2 offers; fallback: news; caps 20 a day, 60 a week
    email: 1 offer; fallback: none (needs consent); caps 1 a day, 3 a week
    daily budgets: shop 100
    >>> warnings
    ['sms: no offer', 'call: no offer']
    """
    summary = [f"catalogue {catalogue.version}: {len(catalogue.offers)} offers"]
    warnings = []
    for channel in OFFER_CHANNELS:
        on_channel = [o for o in catalogue.offers if channel in o.channels]
        if not on_channel:
            warnings.append(f"{channel}: no offer")
            continue
        rules = catalogue.contact_policy
        opt_in = rules.needs_grant(channel)
        # fallbacks offer nothing there
        needs_consent = channel not in WITHOUT_CONSENT or opt_in
        fallback = [o.offer_id for o in catalogue.defaults_for(channel, now, 10)]
        plural = "offer" if len(on_channel) == 1 else "offers"
        day, week = rules.daily_cap(channel), rules.weekly_cap(channel)
        offered = "none (needs consent)" if needs_consent else ", ".join(fallback) or "none"
        quiet = rules.quiet_hours.get(channel)
        summary.append(f"{channel}: {len(on_channel)} {plural}; fallback: {offered}; "
                       f"caps {day} a day, {week} a week"
                       + (f"; quiet {quiet} ({rules.timezone})" if quiet else "")
                       + ("; offers need consent granted (opt-in)" if opt_in else ""))  # fmt: skip
        if day == 0 or week == 0:
            warnings.append(f"{channel}: a contact cap of 0 makes no offers on this channel")
        if not fallback and not needs_consent:
            warnings.append(f"{channel}: fallback answers would offer nothing "
                            "(no default offer on this channel available now)")  # fmt: skip
    rules = catalogue.contact_policy
    per = {"day": rules.outbound_daily_cap, "week": rules.outbound_weekly_cap}
    named = [f"{cap} a {span}" for span, cap in per.items() if cap is not None]
    if named:
        summary.append(f"outbound (email, sms, call together): caps {', '.join(named)}")
        if 0 in per.values():
            warnings.append("outbound: a cap of 0 makes no offers by email, sms or call")
    limits = catalogue.daily_limits()
    if limits:
        summary.append("daily budgets: " + ", ".join(f"{o} {n}" for o, n in limits.items()))
    for offer in catalogue.offers:
        if offer.offer_id in catalogue.default_offers and (offer.segments or offer.min_purchases):
            warnings.append(f"default offer {offer.offer_id!r} is limited to segments or "
                            "purchases, which fallback answers cannot check: they offer it "
                            "to anyone")  # fmt: skip
        start, end = offer.available_from, offer.available_until
        if end is not None and end <= now:
            warnings.append(f"offer {offer.offer_id!r} ended {end.isoformat()}: never made")
        elif start is not None and now < start:
            summary.append(f"offer {offer.offer_id!r} starts {start.isoformat()}")
    return summary, warnings
