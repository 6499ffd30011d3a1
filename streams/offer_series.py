"""When the per-offer metric series of an offer gone from the catalogue go: once it has
been out longer than an outcome of its decisions can still come (campaigns rotate, and
their series would otherwise pile up for as long as a process runs, every scrape writing
them all). Pure: the caller says what the catalogue holds, which offers have series, and
the time."""

from __future__ import annotations

from collections.abc import Iterable

# longer than a decision context is kept (feature_store.records.StoreConfig.context_ttl_s,
# 7 days), after which no outcome of the offer's decisions is joined, counted or learned
OFFER_SERIES_KEPT_S = 8 * 86_400.0


class OffersGone:
    """The offers with series that the catalogue in use lacks, and since when.

    >>> gone = OffersGone()
    >>> gone.catalogue_in_use({"summer"})
    >>> gone.expired({"spring", "summer"}, now_s=0.0)  # spring out from now
    set()
    >>> gone.expired({"spring", "summer"}, now_s=OFFER_SERIES_KEPT_S - 1)
    set()
    >>> gone.expired({"spring", "summer"}, now_s=OFFER_SERIES_KEPT_S)
    {'spring'}
    """

    def __init__(self, kept_s: float = OFFER_SERIES_KEPT_S) -> None:
        self._kept_s = kept_s
        self._offered: frozenset[str] | None = None  # None: no catalogue in use yet
        self._since: dict[str, float] = {}  # an offer with series, out: since when

    def catalogue_in_use(self, offers: Iterable[str]) -> None:
        """The offer ids of the catalogue now in use (its offers' series stay)."""
        self._offered = frozenset(offers)

    def expired(self, shown: Iterable[str], now_s: float) -> set[str]:
        """Of the offers with series (``shown``), those out of the catalogue in use for
        :data:`OFFER_SERIES_KEPT_S` or more, seen out by this or an earlier call: their
        series may go (an offer back in the catalogue starts afresh; one counted again
        after its series went, by an outcome late beyond reason, goes again later)."""
        if self._offered is None:
            return set()
        out = set(shown) - self._offered
        self._since = {offer: self._since.get(offer, now_s) for offer in out}
        expired = {o for o, since in self._since.items() if now_s - since >= self._kept_s}
        for offer in expired:
            del self._since[offer]
        return expired
