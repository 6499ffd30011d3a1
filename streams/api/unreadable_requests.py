"""Requests the API's server could not read as HTTP, told to the log as warnings: the
first at once, then those that follow within :data:`LOG_EVERY_S` in one line, counted by
the kind of error (never the request, which may hold a customer id).

aiohttp logs each one as an error, with a traceback: anyone, with no key, could write a
line per request sent (a scanner, or 300 over-long heads, wrote 300) and set off alerts on
errors. Such a request is the client's fault, answered a JSON 400
(:mod:`streams.api.protocol_errors`).
"""

from __future__ import annotations

import logging
from collections import Counter

from streams.api.throttled_counts import ThrottledCounts, Timer, loop_timer

log = logging.getLogger(__name__)
LOG_EVERY_S = 5.0


def summary(kinds: Counter[str]) -> str:
    """The kinds of error counted, most common first.

    >>> summary(Counter({"LineTooLong": 2, "BadStatusLine": 297}))
    'BadStatusLine: 297, LineTooLong: 2'
    """
    return ", ".join(f"{kind}: {count}" for kind, count in kinds.most_common())


def unreadable_requests(
    every_s: float = LOG_EVERY_S, timer: Timer = loop_timer
) -> ThrottledCounts[str]:
    """The requests not read, by the kind of their error: logged at most once per
    ``every_s`` while they keep coming."""

    def tell(kinds: Counter[str], at_once: bool) -> None:
        if at_once:  # the first in a while, alone
            (kind,) = kinds
            log.warning("a request could not be read as HTTP (%s); answered 400", kind)
            return
        count = kinds.total()
        log.warning("%d more request%s could not be read as HTTP in %g s (%s); answered 400",
                    count, "s" if count > 1 else "", every_s, summary(kinds))  # fmt: skip

    return ThrottledCounts(tell, every_s, timer)
