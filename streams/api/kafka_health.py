"""Whether an API process can use Kafka now, as ``/readyz`` reports it: from what the
process last saw of the broker, without asking it anything more.

The alert fan-out's consumer fetches all the time, and the broker answers each fetch
within half a second, with records or without; the producer's sends succeed or fail as
they are made. Kafka is ``down`` once no fetch was answered for ``stale_s``, or while the
newest send failed less than ``stale_s`` ago; ``connecting`` before the first answer.

>>> now = [100.0]
>>> health = KafkaHealth(lambda: 99.5, stale_s=10, clock=lambda: now[0])
>>> health.check()
'ok'
>>> health.sent(ok=False); health.check()
'down'
>>> health.sent(ok=True); now[0] = 200.0; health.check()  # no fetch answered since 99.5
'down'
>>> health.down_since()
99.5
"""

from __future__ import annotations

import time
from collections.abc import Callable

OK, DOWN, CONNECTING = "ok", "down", "connecting"


class KafkaHealth:
    def __init__(
        self,
        answered: Callable[[], float | None],
        stale_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``answered()``: when (``clock`` time) the broker last answered a fetch, or
        ``None`` if it never did."""
        self._answered = answered
        self._stale_s = stale_s
        self._clock = clock
        self._failed_at: float | None = None  # when the newest send failed, if it did

    def sent(self, ok: bool) -> None:
        """A send to Kafka succeeded, or failed."""
        self._failed_at = None if ok else self._clock()

    def check(self) -> str:
        """``ok``, ``down`` or ``connecting``; costs no request."""
        if self._answered() is None:
            return CONNECTING
        return OK if self.down_since() is None else DOWN

    def down_since(self) -> float | None:
        """Since when (``clock`` time) Kafka is ``down``: its last answer to a fetch, or
        the failed send; ``None`` while it is not (or not reached yet)."""
        answered = self._answered()
        if answered is None:
            return None
        now = self._clock()
        if now - answered > self._stale_s:
            return answered
        if self._failed_at is not None and now - self._failed_at <= self._stale_s:
            return self._failed_at
        return None
