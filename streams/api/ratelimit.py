"""A token bucket per API key, and per visitor of a page key.

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

A bucket that has refilled to full is the same as none: each new bucket drops the first
ones it finds full (and moves on past those that are not), so the buckets of visitors
gone by do not pile up; ``most`` bounds how many are held at once (see
:class:`RateLimits` for what a request past them takes from).

>>> held = RateLimiter(rate=1.0, burst=2, most=2)
>>> [held.allow(key, now=0.0) for key in "aab"], held.has_room("c", now=0.5)
([0.0, 0.0, 0.0], False)
>>> held.has_room("a", now=0.5), held.has_room("c", now=1.0), list(held.held())
(True, True, ['a'])
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

Held = str | tuple[str, str]  # a key's name, or (a page key's name, one of its visitors)
SWEPT_PER_BUCKET = 2  # buckets looked at for being full each time one is made
SWEPT_FOR_ROOM = 16  # and once more when there is no room for a new one


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    def __init__(
        self, rate: float, burst: int, debt: int | None = None, most: int | None = None
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.debt = burst if debt is None else debt
        self.most = most  # buckets held at once (None: as many as there are keys)
        self._buckets: OrderedDict[Held, _Bucket] = OrderedDict()

    def allow(self, key: Held, now: float | None = None) -> float:
        """0.0 when the request may go ahead (it takes a token), else the seconds to wait."""
        bucket = self._filled(key, now)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate

    def charge(self, key: Held, tokens: float, now: float | None = None) -> None:
        """Take ``tokens`` more from the key's bucket, past empty if need be (at most
        ``debt`` below it): its next requests wait until it is paid back."""
        if tokens <= 0:
            return
        bucket = self._filled(key, now)
        bucket.tokens = max(-float(self.debt), bucket.tokens - tokens)

    def in_debt(self, key: Held, now: float | None = None) -> float:
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

    def wait(self, key: Held, now: float | None = None) -> float:
        """What :meth:`allow` would answer now, taking nothing (before a body is sent)."""
        tokens = self._filled(key, now).tokens
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate

    def has_room(self, key: Held, now: float | None = None) -> bool:
        """Whether ``key`` has a bucket, or one can be made within ``most`` (dropping some
        that are full to make room)."""
        if key in self._buckets or self.most is None or len(self._buckets) < self.most:
            return True
        self._sweep(time.monotonic() if now is None else now, SWEPT_FOR_ROOM)
        return len(self._buckets) < self.most

    def __len__(self) -> int:
        return len(self._buckets)

    def held(self) -> Iterator[Held]:
        """The keys whose buckets are held now."""
        return iter(self._buckets)

    def _filled(self, key: Held, now: float | None) -> _Bucket:
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(key)
        if bucket is None:
            self._sweep(now, SWEPT_PER_BUCKET)
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        return bucket

    def _sweep(self, now: float, steps: int) -> None:
        """Look at the ``steps`` oldest-looked-at buckets: drop those full by ``now``, put
        the others last. Each one made takes a few steps, so every bucket is looked at
        again within a few times as many makings as there are buckets."""
        for _ in range(min(steps, len(self._buckets))):
            key, bucket = self._buckets.popitem(last=False)
            if bucket.tokens + (now - bucket.at) * self.rate < self.burst:
                self._buckets[key] = bucket


class RateLimits:
    """The bucket a request takes from: its key's (one per key name), or, for a page key
    (bound to web pages' origins, and so shown to every visitor), its visitor's under
    that key, so that one visitor spending the key leaves the others served.

    Past ``visitors.most`` visitors' buckets held at once, a new visitor takes from its
    key's own bucket, shared by all such (as every visitor's was before), and each such
    request is counted (``overflowed``).

    >>> limits = RateLimits(RateLimiter(10.0, 5), RateLimiter(1.0, 2, most=1))
    >>> [limits.allow("page", "192.0.2.1", now=0.0) for _ in range(3)]
    [0.0, 0.0, 1.0]
    >>> limits.allow("page", "192.0.2.2", now=0.0)  # no room: the key's own bucket
    0.0
    >>> limits.charge("page", 7, "192.0.2.1", now=0.0); limits.in_debt("page", "192.0.2.1", now=0.0)
    2.0
    >>> limits.allow("page", None, now=0.0), limits.in_debt("page", None, now=0.0)  # a key's
    (0.0, 0.0)
    """

    def __init__(
        self,
        keys: RateLimiter,
        visitors: RateLimiter,
        overflowed: Callable[[], None] = lambda: None,
    ) -> None:
        self.keys = keys
        self.visitors = visitors
        self.overflowed = overflowed

    def allow(self, name: str, visitor: str | None, now: float | None = None) -> float:
        """:meth:`RateLimiter.allow` of the request's bucket (``visitor``: None for a key
        not bound to origins)."""
        limiter, key = self._bucket(name, visitor, now)
        if limiter is self.keys and visitor is not None:
            self.overflowed()
        return limiter.allow(key, now)

    def charge(
        self, name: str, tokens: float, visitor: str | None, now: float | None = None
    ) -> None:
        limiter, key = self._bucket(name, visitor, now)
        limiter.charge(key, tokens, now)

    def in_debt(self, name: str, visitor: str | None, now: float | None = None) -> float:
        limiter, key = self._bucket(name, visitor, now)
        return limiter.in_debt(key, now)

    def wait(self, name: str, visitor: str | None, now: float | None = None) -> float:
        limiter, key = self._bucket(name, visitor, now)
        return limiter.wait(key, now)

    def _bucket(
        self, name: str, visitor: str | None, now: float | None
    ) -> tuple[RateLimiter, Held]:
        if visitor is None:
            return self.keys, name
        if self.visitors.has_room((name, visitor), now):
            return self.visitors, (name, visitor)
        return self.keys, name
