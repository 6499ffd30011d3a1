"""A token bucket per API key (or per client address, for keys that are not valid).

>>> bucket = RateLimiter(rate=1.0, burst=2)
>>> [bucket.allow("k", now=0.0) for _ in range(3)]
[0.0, 0.0, 1.0]
>>> few = RateLimiter(rate=1.0, burst=2, most_kept=2)  # at most two remembered
>>> [few.allow(k, now=0.0) for k in ("a", "b", "c")], len(few)
([0.0, 0.0, 0.0], 2)
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    def __init__(self, rate: float, burst: int, most_kept: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self._most_kept = most_kept  # buckets remembered; then the stalest are dropped
        self._buckets: dict[str, _Bucket] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, key: str, now: float | None = None) -> float:
        """0.0 when the request may go ahead, else the seconds to wait."""
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._most_kept:
                self._forget(now)
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate

    def _forget(self, now: float) -> None:
        """Drop the buckets full again by ``now`` (as good as new), else the stalest
        half: the memory stays bounded however many keys or addresses come."""
        full_after = self.burst / self.rate
        kept = {k: b for k, b in self._buckets.items() if now - b.at < full_after}
        if len(kept) >= self._most_kept:
            newest = sorted(kept.items(), key=lambda kb: kb[1].at)[len(kept) // 2 :]
            kept = dict(newest)
        self._buckets = kept
