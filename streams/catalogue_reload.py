"""Read the offer catalogue again when its file changes, without a restart.

Workers and API replicas each check the file every ``MOMENTS_CATALOGUE_CHECK_S``
seconds (a Kubernetes ConfigMap mounted as a directory is updated in place). A new
catalogue is validated whole before it is used; one that fails validation is refused,
logged once with the reason, counted, and the catalogue in use stays.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from agents.catalogue_holder import CatalogueHolder
from schemas import CatalogueError, OfferCatalogue, load_catalogue

log = logging.getLogger(__name__)

APPLIED, REFUSED = "applied", "refused"
_Signature = tuple[int, int, int] | None  # inode, size, mtime; None while unreadable


def _signature(path: Path) -> _Signature:
    try:
        stat = os.stat(path)  # follows the symlinks a ConfigMap update swaps
    except OSError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


class CatalogueReloader:
    """Swaps the holder's catalogue when the file at ``path`` holds a new, valid one.

    ``reloaded(catalogue, outcome)`` is told of every applied or refused reload, with
    the catalogue in use afterwards (for metrics).
    """

    def __init__(
        self,
        path: str | Path,
        holder: CatalogueHolder,
        reloaded: Callable[[OfferCatalogue, str], None] = lambda catalogue, outcome: None,
    ) -> None:
        self._path = Path(path)
        self._holder = holder
        self._reloaded = reloaded
        self._seen = _signature(self._path)  # the file as the holder's catalogue was read

    def check(self) -> str | None:
        """Look at the file once; the outcome if it changed since it was last looked at."""
        signature = _signature(self._path)
        if signature == self._seen and signature is not None:
            return None
        if signature is None and self._seen is None:
            return None  # still missing: said so when it went
        self._seen = signature
        try:
            catalogue = load_catalogue(self._path)
        except CatalogueError as exc:
            log.warning("offer catalogue refused, still using version %r: %s",
                        self._holder.current.version, exc)  # fmt: skip
            self._reloaded(self._holder.current, REFUSED)
            return REFUSED
        if catalogue == self._holder.current:
            return None  # touched, not changed
        previous, self._holder.current = self._holder.current, catalogue
        log.info("offer catalogue version %r in use (%d offers; was version %r)",
                 catalogue.version, len(catalogue.offers), previous.version)  # fmt: skip
        self._reloaded(catalogue, APPLIED)
        return APPLIED
