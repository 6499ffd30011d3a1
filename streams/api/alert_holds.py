"""Alerts held back by a transaction left open in ``interventions``.

The alert fan-out reads committed records only: behind a transaction a producer opened
and has not ended (it hangs, or died), every later alert of that partition waits, Moments'
own included, until the producer ends it or the broker aborts it (the producer's
``transaction.timeout.ms``, 60 s by default). The consumer then stands at the partition's
last stable offset, below its end. :class:`TransactionHolds` tells how long that has
lasted, logs a holding that passes ``warn_after_s`` (and its end), and the API exports
the longest as ``moments_alerts_held_seconds``. Moments' own transactions hold a partition
for a commit interval at most, seconds, which stays below the warning.

>>> now = [0.0]
>>> holds = TransactionHolds(warn_after_s=10.0, clock=lambda: now[0])
>>> holds.saw(0, read_to=40, stable=40, end=45)  # read to a transaction still open
>>> now[0] = 12.0
>>> holds.saw(0, read_to=40, stable=40, end=46)
>>> holds.held_s()
12.0
>>> holds.saw(0, read_to=40, stable=47, end=47)  # committed (or aborted): not held
>>> holds.held_s()
0.0
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)
WARN_AFTER_S = 10.0


@dataclass
class _Holding:
    stable: int  # the offset of the transaction's first record: nothing after it is read
    since: float
    told: bool = False  # logged as held


class TransactionHolds:
    """Per partition of ``interventions``, the transaction its alerts wait behind."""

    def __init__(
        self,
        topic: str = "interventions",
        warn_after_s: float = WARN_AFTER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._topic = topic
        self._warn_after_s = warn_after_s
        self._clock = clock
        self._held: dict[int, _Holding] = {}

    def saw(self, partition: int, read_to: int, stable: int | None, end: int | None) -> None:
        """What a fetch told of ``partition``: read up to ``read_to`` (the next offset to
        hand on), its last stable offset and its end (None: not known yet)."""
        now = self._clock()
        holding = self._held.get(partition)
        if stable is None or end is None or stable >= end or read_to < stable:
            if holding is not None:  # ended, or there is committed reading to do first
                del self._held[partition]
                if holding.told:
                    log.info("%s[%d]: the alerts held back by an open transaction are read "
                             "again (held %.0f s)", self._topic, partition,
                             now - holding.since)  # fmt: skip
            return
        if holding is None or holding.stable != stable:  # another transaction holds it
            holding = self._held[partition] = _Holding(stable, now)
        if not holding.told and now - holding.since >= self._warn_after_s:
            holding.told = True
            log.warning("%s[%d]: alerts from offset %d on wait for a transaction a producer "
                        "left open (%.0f s so far); the broker aborts it after that "
                        "producer's transaction.timeout.ms", self._topic, partition, stable,
                        now - holding.since)  # fmt: skip

    def clear(self) -> None:
        """Forget every holding (the fan-out reconnects: it learns them again)."""
        self._held.clear()

    def held_s(self) -> float:
        """How long the longest holding has lasted, in seconds (0.0: none)."""
        if not self._held:
            return 0.0
        return self._clock() - min(h.since for h in self._held.values())
