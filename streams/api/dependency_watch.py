"""What an API process tells its log of Redis and Kafka: one line when one becomes
unusable, saying what the API does meanwhile, and one when it is back, saying how long
it was away. Requests answered meanwhile log nothing each (their metrics count them).

>>> watch = Outages()
>>> watch.seen("redis", False, now=10.0)
'Redis cannot be reached: recommendations are the default offers, profiles 503'
>>> watch.seen("redis", False, now=15.0) is None  # said once
True
>>> watch.seen("redis", True, now=42.0)
'Redis is reachable again, after 32 s'
>>> watch.seen("kafka", True, now=50.0) is None  # nothing happened
True
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

CHECK_EVERY_S = 5.0
# what the API does while each is away
MEANWHILE = {
    "redis": "Redis cannot be reached: recommendations are the default offers, profiles 503",
    "kafka": "Kafka cannot be used: events and outcomes get 503 once their writes fail, "
    "decisions wait to be published, alert streams wait",
}
NAMES = {"redis": "Redis", "kafka": "Kafka"}


class Outages:
    """Which dependencies are away, since when (pure: the caller says what it saw)."""

    def __init__(self) -> None:
        self._since: dict[str, float] = {}

    def seen(self, name: str, usable: bool, now: float) -> str | None:
        """What to log of ``name`` found ``usable`` or not at ``now``: a line when that
        changed, else None."""
        since = self._since.get(name)
        if not usable and since is None:
            self._since[name] = now
            return MEANWHILE[name]
        if usable and since is not None:
            del self._since[name]
            return f"{NAMES[name]} is reachable again, after {now - since:.0f} s"
        return None


class DependencyLog:
    """Logs what :class:`Outages` says from a look every few seconds, or at once when a
    request met trouble (so that a short outage is told too; the look decides, so that
    a Redis full or read-only, which still answers, is not told as unreachable)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._outages = Outages()
        self._clock = clock
        self._look_now = asyncio.Event()

    def look_now(self) -> None:
        """A request met trouble: look before the next interval is up."""
        self._look_now.set()

    def saw(self, name: str, usable: bool) -> None:
        line = self._outages.seen(name, usable, self._clock())
        if line is not None:  # both at warning: where the one shows, so does the other
            log.warning(line)

    async def keep_watching(
        self,
        redis_ok: Callable[[], Awaitable[bool]],
        kafka_ok: Callable[[], bool],
        every_s: float = CHECK_EVERY_S,
    ) -> None:
        """Look every ``every_s`` until cancelled."""
        while True:
            self._look_now.clear()
            self.saw("redis", await redis_ok())
            self.saw("kafka", kafka_ok())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._look_now.wait(), every_s)
