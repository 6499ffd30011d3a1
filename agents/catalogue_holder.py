"""The offer catalogue decisions are taken with, replaced whole when a new one is read.

Like :class:`agents.learned_policy.ModelHolder`: policies read ``current`` at every
decision, so a catalogue published by analysts applies from the next decision on,
without a restart.
"""

from __future__ import annotations

from schemas import OfferCatalogue


class CatalogueHolder:
    """The catalogue in use; swap ``current`` to change it everywhere at once. The one it
    replaced is kept too, for what was decided with it just before (:meth:`of_version`).

    >>> from schemas import Offer
    >>> shop = Offer(offer_id="shop", title="Shop", channels=["web"])
    >>> holder = CatalogueHolder(OfferCatalogue(version="1", offers=[shop]))
    >>> holder.current = OfferCatalogue(version="2", offers=[shop])
    >>> holder.current.version, holder.of_version("1").version, holder.of_version("9").version
    ('2', '1', '2')
    """

    __slots__ = ("_current", "_previous")

    def __init__(self, current: OfferCatalogue) -> None:
        self._current = current
        self._previous: OfferCatalogue | None = None

    @property
    def current(self) -> OfferCatalogue:
        return self._current

    @current.setter
    def current(self, catalogue: OfferCatalogue) -> None:
        self._previous, self._current = self._current, catalogue

    def of_version(self, version: str | None) -> OfferCatalogue:
        """The catalogue of ``version``: the current one, or the one it replaced; the
        current one when neither is (a decision taken before two reloads)."""
        previous = self._previous
        if version != self._current.version and previous and previous.version == version:
            return previous
        return self._current
