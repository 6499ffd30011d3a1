"""Whether Redis keeps what Moments wrote across its restarts, read every half minute by
every worker and API process into ``moments_redis_forgetful`` (alert
MomentsRedisForgetful). A restart is noticed by its run id, and one that lost the
store's data (its layout mark is gone: Redis came back empty, or from a snapshot older
than the mark) is said in an error, counted in ``moments_redis_data_lost_total`` (alert
MomentsRedisLostData) and marked again.

Redis is the system of record for erasure blocks, consent withdrawals kept apart and the
events applied: a Redis that restarts without an append-only file goes back to its last
snapshot, and an erased customer comes back, an event counts twice."""

from __future__ import annotations

import asyncio
import logging

from feature_store import FeatureStore, LayoutMismatch, SecretMismatch
from streams.metrics import Metrics

log = logging.getLogger(__name__)

CHECK_EVERY_S = 30.0
LOST = (
    "Redis restarted without the feature store's layout mark: it lost the data Moments "
    "wrote (it came back empty, or from a snapshot older than the mark). Erasures, consent "
    "withdrawals and the record of applied events are gone with it: an erased customer's "
    "late events make them again, a replayed event counts twice. Run `moments rebuild "
    "--force` into it (the topics hold all of it, erasures included), and keep an "
    "append-only file (appendonly yes)"
)
FORGETFUL = (
    "Redis restarted without an append-only file: it came back as of its last snapshot, "
    "and what it was given since (erasures, consent withdrawals, applied events) is gone; "
    "run `moments rebuild --force` into it, and set appendonly yes"
)


class RedisRestartWatch:
    """Reads whether Redis keeps an append-only file; says when it restarted, and what
    the restart lost."""

    def __init__(self, store: FeatureStore, metrics: Metrics, within_s: float = 5.0) -> None:
        self._store = store
        self._metrics = metrics
        self._within_s = within_s
        self._run_ids: frozenset[str] | None = None  # as last read
        self._append_only = True  # as last read

    async def check(self) -> str | None:
        """Read Redis now; returns what was found of a restart since the last reading
        (``kept``, ``forgotten``: no append-only file, ``lost``: the layout mark gone),
        None when there was none or Redis did not answer within ``within_s``."""
        try:
            async with asyncio.timeout(self._within_s):
                durability = await self._store.server.durability()
        except Exception as exc:  # unreachable, or INFO refused: no word
            log.debug("Redis's persistence could not be read: %s", type(exc).__name__)
            return None
        self._metrics.redis_forgetful.set(0 if durability.append_only else 1)
        was, self._run_ids = self._run_ids, durability.run_ids
        append_only_before, self._append_only = self._append_only, durability.append_only
        if was is None or not durability.run_ids or durability.run_ids <= was:
            return None
        try:
            async with asyncio.timeout(self._within_s):
                if not await self._store.layout.check():
                    self._metrics.redis_data_lost.inc()
                    log.error(LOST)
                    await self._store.layout.mark()
                    return "lost"
        except (LayoutMismatch, SecretMismatch) as exc:  # another Moments wrote it since
            log.critical("Redis restarted and now holds %s", exc)
            return "lost"
        except Exception as exc:  # unreachable again: the next reading asks again
            log.debug("Redis's layout mark could not be read: %s", type(exc).__name__)
            self._run_ids = was
            return None
        if not (append_only_before and durability.append_only):
            log.warning(FORGETFUL)
            return "forgotten"
        log.info("Redis restarted; its append-only file kept what Moments wrote")
        return "kept"

    async def keep_watching(self, every_s: float = CHECK_EVERY_S) -> None:
        """Check every ``every_s`` until cancelled."""
        while True:
            await self.check()
            await asyncio.sleep(every_s)
