"""A token bucket per API key.

>>> bucket = RateLimiter(rate=1.0, burst=2)
>>> [bucket.allow("k", now=0.0) for _ in range(3)]
[0.0, 0.0, 1.0]
>>> bucket.wait("k", now=0.5), bucket.wait("k", now=0.5), bucket.allow("k", now=1.0)
(0.5, 0.5, 0.0)

A request that cost more than one (a large body) is charged the rest once it is known,
into debt, down to ``debt`` below empty (one burst unless told):

>>> bucket.charge("k", 10, now=1.0)
>>> bucket.allow("k", now=2.0)
2.0
>>> deep = RateLimiter(rate=1.0, burst=2, debt=5)
>>> deep.charge("k", 10, now=0.0); deep.in_debt("k", now=0.0), deep.allow("k", now=0.0)
(5.0, 6.0)
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    def __init__(self, rate: float, burst: int, debt: int | None = None) -> None:
        self.rate = rate
        self.burst = burst
        self.debt = burst if debt is None else debt
        self._buckets: dict[str, _Bucket] = {}

    def allow(self, key: str, now: float | None = None) -> float:
        """0.0 when the request may go ahead (it takes a token), else the seconds to wait."""
        bucket = self._filled(key, now)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate

    def charge(self, key: str, tokens: float, now: float | None = None) -> None:
        """Take ``tokens`` more from the key's bucket, past empty if need be (at most
        ``debt`` below it): its next requests wait until it is paid back."""
        if tokens <= 0:
            return
        bucket = self._filled(key, now)
        bucket.tokens = max(-float(self.debt), bucket.tokens - tokens)

    def in_debt(self, key: str, now: float | None = None) -> float:
        """The seconds until the key's bucket is out of debt (0.0: it is not in debt),
        taking nothing: a costly body whose key went into debt after it was admitted is
        refused before its cost is spent.

        >>> bucket = RateLimiter(rate=1.0, burst=2)
        >>> bucket.allow("k", now=0.0), bucket.in_debt("k", now=0.0)
        (0.0, 0.0)
        >>> bucket.charge("k", 3, now=0.0); bucket.in_debt("k", now=0.0)
        2.0
        """
        tokens = self._filled(key, now).tokens
        return 0.0 if tokens >= 0 else -tokens / self.rate

    def wait(self, key: str, now: float | None = None) -> float:
        """What :meth:`allow` would answer now, taking nothing (before a body is sent)."""
        tokens = self._filled(key, now).tokens
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate

    def _filled(self, key: str, now: float | None) -> _Bucket:
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        return bucket
