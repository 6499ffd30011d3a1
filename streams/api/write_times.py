"""How long Kafka took to take the ingest's recent writes, so that an answer that writes
nothing (every item of the request was about an erased customer) takes as long as one
that writes: otherwise its speed alone would tell a sender who was erased.

An answer that writes nothing waits for one of the recent write times drawn at random,
so that, over many answers, its delay is spread as the writes' are. A process that has
written nothing yet has no time to draw from, and waits for none.

>>> times = WriteTimes(keep=3, draw=lambda seq: seq[-1])
>>> times.to_wait()
0.0
>>> for seconds in (0.002, 0.003, 0.004, 0.005):
...     times.took(seconds)
>>> times.to_wait(), len(times)
(0.005, 3)
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

KEEP = 256  # the recent write times drawn from: some seconds of ingest under load
LONGEST_S = 1.0  # a write slower than this (Kafka in trouble) is kept as this long
LATE_WEIGHT = 0.1  # of the last wait, in the average of how late timers wake
LATE_S = 0.002  # a wait later than this met a busy loop, not a timer's rounding


class WriteTimes:
    """The times of the last ``keep`` writes, and a draw of one to wait for."""

    def __init__(
        self,
        keep: int = KEEP,
        draw: Callable[[Sequence[float]], float] | None = None,
    ) -> None:
        self._times: deque[float] = deque(maxlen=keep)
        self._draw = draw or random.Random().choice
        self._late = 0.0  # how late a timer wakes, on average of late

    def __len__(self) -> int:
        return len(self._times)

    def took(self, seconds: float) -> None:
        """A write Kafka acknowledged after ``seconds``."""
        self._times.append(min(max(seconds, 0.0), LONGEST_S))

    async def timed(self, write: Callable[[], Awaitable[None]]) -> None:
        """Make ``write`` and keep how long it took, if it was taken."""
        started = time.perf_counter()
        await write()
        self.took(time.perf_counter() - started)

    def to_wait(self) -> float:
        """How long an answer that writes nothing waits: one recent write's time."""
        return self._draw(self._times) if self._times else 0.0

    async def wait(self) -> None:
        """Wait for :meth:`to_wait`, less how late the loop's timers have woken lately
        (uvloop's run to the next millisecond): as long as a write, not longer."""
        wanted = self.to_wait()
        if not wanted:
            return
        asked = max(wanted - self._late, 0.0)
        started = time.perf_counter()
        await asyncio.sleep(asked)
        late = time.perf_counter() - started - asked
        self._late += LATE_WEIGHT * (min(late, LATE_S) - self._late)
