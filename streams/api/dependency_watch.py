"""What an API process tells its log of Redis and Kafka: one line when one becomes
unusable, saying what the API does meanwhile, and one when it is back, saying how long
it was away. Requests answered meanwhile log nothing each (their metrics count them).
Its metrics say the same as it lasts (``moments_dependency_up``: :func:`show_in_metrics`).

>>> watch = Outages()
>>> watch.seen("redis", False, now=10.0)
'Redis cannot be reached: recommendations are the default offers, profiles 503'
>>> watch.seen("redis", False, now=15.0) is None  # said once
True
>>> watch.seen("redis", True, now=42.0)
'Redis is reachable again, after 32 s'
>>> watch.seen("kafka", True, now=50.0) is None  # nothing happened
True
>>> said = watch.seen("kafka", False, now=60.0, since=50.5)  # 10 s after its last answer
>>> said.startswith("Kafka cannot be used")
True
>>> watch.seen("kafka", True, now=80.0)
'Kafka is reachable again, after 30 s'
>>> watch.seen("redis_writes", False, now=90.0).startswith("Redis answers but refuses")
True
>>> watch.seen("redis_writes", True, now=150.0)
"Redis takes the store's writes again, after 60 s"
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from streams.api.kafka_health import OK, KafkaHealth
from streams.metrics import Metrics

log = logging.getLogger(__name__)

CHECK_EVERY_S = 5.0
LOOK_AGAIN_AFTER_S = 0.5  # the soonest look after the last, however often one is asked for
# what the API does while each is away
MEANWHILE = {
    "redis": "Redis cannot be reached: recommendations are the default offers, profiles 503",
    "kafka": "Kafka cannot be used: events and outcomes get 503 once their writes fail, "
    "decisions wait to be published, alert streams wait",
    # Redis answers (its look finds it reachable) but a recommendation's write was refused
    "redis_writes": "Redis answers but refuses the store's writes (full: maxmemory under "
    "noeviction; a read-only replica; or a command its user may no longer run): "
    "recommendations are the default offers",
}
BACK = {
    "redis": "Redis is reachable again",
    "kafka": "Kafka is reachable again",
    "redis_writes": "Redis takes the store's writes again",
}


class Outages:
    """Which dependencies are away, since when (pure: the caller says what it saw)."""

    def __init__(self) -> None:
        self._since: dict[str, float] = {}

    def away(self, name: str) -> bool:
        """Whether ``name`` was found away at the last look."""
        return name in self._since

    def seen(self, name: str, usable: bool, now: float, since: float | None = None) -> str | None:
        """What to log of ``name`` found ``usable`` or not at ``now`` (away ``since``
        then, when known: it is found away only some time after): a line when that
        changed, else None."""
        away_since = self._since.get(name)
        if not usable and away_since is None:
            self._since[name] = now if since is None else min(since, now)
            return MEANWHILE[name]
        if usable and away_since is not None:
            del self._since[name]
            return f"{BACK[name]}, after {now - away_since:.0f} s"
        return None


class DependencyLog:
    """Logs what :class:`Outages` says from a look every few seconds, or at once when a
    request met trouble (so that a short outage is told too; the look decides, so that
    a Redis full or read-only, which still answers, is not told as unreachable)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._outages = Outages()
        self._clock = clock
        self._look_now = asyncio.Event()

    def look_now(self) -> None:
        """A request met trouble: look before the next interval is up."""
        self._look_now.set()

    def away(self, name: str) -> bool:
        """Whether ``name`` (``redis``, ``kafka``) was found away at the last look."""
        return self._outages.away(name)

    def writes_refused(self, refused: bool) -> None:
        """A recommendation's write was refused by a Redis that answers (full, read-only,
        a command refused), or one was taken: told once each way."""
        if refused or self._outages.away("redis_writes"):
            self.saw("redis_writes", not refused)

    def saw(self, name: str, usable: bool, since: float | None = None) -> None:
        """``name`` found ``usable`` or not (away ``since``, ``clock`` time, if known)."""
        line = self._outages.seen(name, usable, self._clock(), since)
        if line is not None:  # both at warning: where the one shows, so does the other
            log.warning(line)

    async def keep_watching(
        self,
        redis_ok: Callable[[], Awaitable[bool]],
        kafka_down_since: Callable[[], float | None],
        every_s: float = CHECK_EVERY_S,
    ) -> None:
        """Look every ``every_s`` until cancelled. ``kafka_down_since``: since when
        (``clock`` time) Kafka is away, ``None`` while it is not."""
        while True:
            self._look_now.clear()
            self.saw("redis", await redis_ok())
            away_since = kafka_down_since()
            self.saw("kafka", away_since is None, away_since)
            # asked at once by every answer out of time under load: a look at most so often
            soonest = min(LOOK_AGAIN_AFTER_S, every_s)
            await asyncio.sleep(soonest)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._look_now.wait(), every_s - soonest)


def show_in_metrics(metrics: Metrics, outages: DependencyLog, kafka: KafkaHealth) -> None:
    """``moments_dependency_up`` from what ``/readyz`` reads, asked at each scrape (no
    request of its own): Redis as the last look found it, Kafka as the process last saw
    it (``down``, and ``connecting`` before its first answer, show 0)."""
    metrics.dependency_shown_by("redis", lambda: not outages.away("redis"))
    metrics.dependency_shown_by("kafka", lambda: kafka.check() == OK)
