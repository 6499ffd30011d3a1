"""The answer of ``GET /v1/offers``: the catalogue in use, which offers may be made now,
how much of each daily budget is spent, and the contact caps (pure).

>>> from datetime import UTC
>>> from schemas import OfferCatalogue
>>> catalogue = msgspec.convert({"version": "v1", "offers": [{"offer_id": "voucher",
...     "title": "Voucher", "channels": ["web"], "daily_limit": 10}]}, OfferCatalogue)
>>> body = catalogue_listing(catalogue, "web", datetime(2026, 12, 1, tzinfo=UTC), {"voucher": 3})
>>> [(o["offer_id"], o["available_now"], o["shown_today"]) for o in body["offers"]]
[('voucher', True, 3)]
>>> catalogue_listing(catalogue, "email", datetime(2026, 12, 1, tzinfo=UTC), None)["offers"]
[]
>>> body = catalogue_listing(catalogue, None, datetime(2026, 12, 1, tzinfo=UTC),
...                          {"voucher": 10}, {"voucher"})  # its count is "3.0"
>>> body["budgets_read"], body["offers"][0]["shown_today"]
(False, None)
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

import msgspec

from schemas import OfferCatalogue
from schemas.catalogue import OFFER_CHANNELS
from schemas.contact_rules import OUTBOUND


def catalogue_listing(
    catalogue: OfferCatalogue,
    channel: str | None,
    now: datetime,
    shown: Mapping[str, int] | None,
    unreadable: Collection[str] = (),
) -> dict[str, Any]:
    """The catalogue's offers (of ``channel`` only, if given) as of ``now``; ``shown``:
    the day's budget counts, None when they could not be read; ``unreadable``: the
    offers whose count alone could not be read (not made today), shown as not known."""
    listed = []
    for offer in catalogue.offers:
        if channel is not None and channel not in offer.channels:
            continue
        item = msgspec.to_builtins(offer)
        item["available_now"] = offer.available_at(now)
        if offer.daily_limit is not None:
            if shown is None or offer.offer_id in unreadable:
                item["shown_today"] = None  # not known
            else:
                item["shown_today"] = shown.get(offer.offer_id, 0)
        listed.append(item)
    rules = catalogue.contact_policy
    channels = OFFER_CHANNELS if channel is None else (channel,)
    return {
        "catalogue_version": catalogue.version,
        "default_offers": catalogue.default_offers,
        "budgets_read": shown is not None and not unreadable,
        "offers": listed,
        "contact_caps": {c: {"day": rules.daily_cap(c), "week": rules.weekly_cap(c),
                             "quiet_hours": rules.quiet_hours.get(c),
                             "consent_required": rules.needs_grant(c)} for c in channels},
        "contact_timezone": rules.timezone,
        "outbound_caps": {"channels": list(OUTBOUND), "day": rules.outbound_daily_cap,
                          "week": rules.outbound_weekly_cap},
    }  # fmt: skip
