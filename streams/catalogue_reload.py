"""Read the offer catalogue again when its file changes, without a restart.

Workers and API replicas each read the file every ``MOMENTS_CATALOGUE_CHECK_S``
seconds (a few kilobytes; a Kubernetes ConfigMap mounted as a directory is updated in
place, and reading follows its symlinks), and at once on SIGHUP (``kill -HUP``,
``systemctl reload``). Content that differs from the last read is taken up once two
checks in a row read the same bytes (a file being written in place, cut at a line, is
often still a valid catalogue: one offer short of its segments, say), or at once on
SIGHUP, which says the file is written. It is validated whole before it is used; a
catalogue that fails validation is refused, logged once with the reason, counted, and
the catalogue in use stays; the refusal is shown (``file_refused``) for as long as the
file stays so, since a process starting meanwhile would exit 2 on it. One whose content
changed under the same ``version`` (which metrics and decisions name it by) is applied
with a warning: processes starting take it, and the running ones must not be left apart
from them under one name.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from pathlib import Path

from agents.catalogue_holder import CatalogueHolder
from schemas import CatalogueError, OfferCatalogue, load_catalogue
from schemas.catalogue import read_catalogue

log = logging.getLogger(__name__)

APPLIED, REFUSED = "applied", "refused"


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
        self._last: bytes | str | None = None  # what was last acted on, or why it could not
        self._changing: bytes | str | None = None  # a change read once, not yet settled
        self._refused = False  # the file, as last taken up, was refused

    @property
    def file_refused(self) -> bool:
        """Whether the file, as last taken up, is refused (invalid, or unreadable): the
        catalogue in use stays, but a process starting now would exit 2 on it. False
        again once a file is applied, or reads as the catalogue in use. (The refusal
        is counted and logged once per content: this says it lasts.)"""
        return self._refused

    def check(self, written: bool = False) -> str | None:
        """Read the file once; the outcome if its content changed since the last change
        acted on, reads the same as at the check before (or ``written``: told it is),
        and differs from the catalogue in use."""
        try:
            raw: bytes | str = read_catalogue(self._path)
        except CatalogueError as exc:
            raw = str(exc)
        if raw == self._last:
            self._changing = None
            return None
        if not written and raw != self._changing:  # it may still be being written
            self._changing = raw
            return None
        self._last, self._changing = raw, None
        if isinstance(raw, str):
            return self._refuse(raw)
        try:
            catalogue = load_catalogue(self._path, raw)
        except CatalogueError as exc:
            return self._refuse(str(exc))
        self._refused = False  # valid: a process starting now would take it
        if catalogue == self._holder.current:
            return None  # rewritten, not changed (or a refused file put back)
        digest = catalogue.digest()  # worked out before it is in use: no half reload
        if catalogue.version == self._holder.current.version:  # applied all the same: a
            # process starting now takes it, and the processes must not split
            log.warning("offer catalogue content changed but its version did not (%r, "
                        "digest %s, was %s): decisions cannot tell the two apart; give "
                        "every change a new version", catalogue.version, digest,
                        self._holder.current.digest())  # fmt: skip
        previous, self._holder.current = self._holder.current, catalogue
        log.info(
            "offer catalogue version %r in use (digest %s, %d offers; was version %r)",
            catalogue.version,
            digest,
            len(catalogue.offers),
            previous.version,
        )
        self._reloaded(catalogue, APPLIED)
        return APPLIED

    def _refuse(self, reason: str) -> str:
        self._refused = True
        log.warning("offer catalogue refused, still using version %r: %s",
                    self._holder.current.version, reason)  # fmt: skip
        self._reloaded(self._holder.current, REFUSED)
        return REFUSED

    def check_logged(self, written: bool = False) -> None:
        """:meth:`check`, for background use: an unexpected error is logged and the
        catalogue in use stays."""
        try:
            self.check(written)
        except Exception:
            log.warning("could not check the offer catalogue", exc_info=True)

    def on_hangup(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Check at once on SIGHUP (which would otherwise end the process); False where
        the platform has no SIGHUP."""
        if not hasattr(signal, "SIGHUP"):
            return False
        try:
            loop.add_signal_handler(signal.SIGHUP, self.check_logged, True)
        except NotImplementedError:
            return False
        return True
