"""How full Redis is, read every half minute by every worker and API process into
``moments_redis_memory_used_bytes``, ``moments_redis_memory_max_bytes`` and
``moments_redis_evicting`` (the alerts MomentsRedisMemoryHigh and MomentsRedisMayEvict
watch them). A change of eviction policy after the start is logged as it is read: the
start checks it once (:mod:`streams.redis_checks`), and a ``CONFIG SET`` or a managed
service's parameter group can change it while Moments runs."""

from __future__ import annotations

import asyncio
import logging

from feature_store import FeatureStore, RedisMemory, evicting_policy, fullest
from streams.metrics import Metrics

log = logging.getLogger(__name__)

CHECK_EVERY_S = 30.0
_UNREAD = "unread"  # no reading yet: the start check said what it found


class RedisMemoryWatch:
    """Reads Redis's memory into the metrics; says when its eviction policy changes."""

    def __init__(self, store: FeatureStore, metrics: Metrics, within_s: float = 5.0) -> None:
        self._store = store
        self._metrics = metrics
        self._within_s = within_s
        self._evicting: str | None = _UNREAD  # the policy evicting at the last reading

    async def check(self) -> RedisMemory | None:
        """Read Redis's memory now; returns its fullest node (None when Redis did not
        answer within ``within_s``: the metrics keep their last reading)."""
        try:
            async with asyncio.timeout(self._within_s):
                nodes = await self._store.server.memory()
        except Exception as exc:  # unreachable, refused: Redis's own alerts say so
            log.debug("Redis's memory could not be read: %s", type(exc).__name__)
            return None
        node = fullest(nodes)
        if node is None:
            return None
        self._metrics.redis_memory_used.set(node.used_bytes)
        self._metrics.redis_memory_max.set(node.max_bytes)
        evicting = evicting_policy(nodes)
        self._metrics.redis_evicting.set(0 if evicting is None else 1)
        if self._evicting != _UNREAD and evicting != self._evicting:
            if evicting is None:
                log.info("Redis no longer evicts keys (maxmemory-policy noeviction)")
            else:
                log.warning(
                    "Redis's maxmemory-policy is now %s: when it is full it may evict an "
                    "erasure's block, a consent withdrawal or an event's dedupe mark; set "
                    "it back to noeviction",
                    evicting,
                )
        self._evicting = evicting
        return node

    async def keep_watching(self, every_s: float = CHECK_EVERY_S) -> None:
        """Check every ``every_s`` until cancelled."""
        while True:
            await self.check()
            await asyncio.sleep(every_s)
