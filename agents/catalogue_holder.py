"""The offer catalogue decisions are taken with, replaced whole when a new one is read.

Like :class:`agents.learned_policy.ModelHolder`: policies read ``current`` at every
decision, so a catalogue published by analysts applies from the next decision on,
without a restart.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas import OfferCatalogue


@dataclass(slots=True)
class CatalogueHolder:
    """The catalogue in use; swap ``current`` to change it everywhere at once.

    >>> from schemas import Offer
    >>> shop = Offer(offer_id="shop", title="Shop", channels=["web"])
    >>> holder = CatalogueHolder(OfferCatalogue(version="1", offers=[shop]))
    >>> holder.current = OfferCatalogue(version="2", offers=[shop])
    >>> holder.current.version
    '2'
    """

    current: OfferCatalogue
