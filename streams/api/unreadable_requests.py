"""Requests the API's server could not read as HTTP, told to the log as warnings: the
first at once, then those that follow within :data:`LOG_EVERY_S` in one line, counted by
the kind of error (never the request, which may hold a customer id).

aiohttp logs each one as an error, with a traceback: anyone, with no key, could write a
line per request sent (a scanner, or 300 over-long heads, wrote 300) and set off alerts on
errors. Such a request is the client's fault, answered a JSON 400
(:mod:`streams.api.protocol_errors`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

log = logging.getLogger(__name__)
LOG_EVERY_S = 5.0


def summary(kinds: Counter[str]) -> str:
    """The kinds of error counted, most common first.

    >>> summary(Counter({"LineTooLong": 2, "BadStatusLine": 297}))
    'BadStatusLine: 297, LineTooLong: 2'
    """
    return ", ".join(f"{kind}: {count}" for kind, count in kinds.most_common())


class UnreadableRequests:
    """The requests not logged yet, by kind; logged at most once per ``every_s``."""

    def __init__(self, every_s: float = LOG_EVERY_S) -> None:
        self._every_s = every_s
        self._unlogged: Counter[str] = Counter()
        self._due: asyncio.TimerHandle | None = None

    def seen(self, kind: str) -> None:
        """A request that could not be read, ``kind`` the class of its error."""
        self._unlogged[kind] += 1
        if self._due is None:  # the first in a while: now, and the next ones later
            log.warning("a request could not be read as HTTP (%s); answered 400", kind)
            self._unlogged.clear()
            self._wait()

    def _wait(self) -> None:
        self._due = asyncio.get_running_loop().call_later(self._every_s, self._log_unlogged)

    def _log_unlogged(self) -> None:
        self._due = None
        if not self._unlogged:
            return
        count = sum(self._unlogged.values())
        log.warning("%d more request%s could not be read as HTTP in %g s (%s); answered 400",
                    count, "s" if count > 1 else "", self._every_s,
                    summary(self._unlogged))  # fmt: skip
        self._unlogged.clear()
        self._wait()  # while they keep coming, a line per period at most
