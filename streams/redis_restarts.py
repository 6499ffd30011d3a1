"""Whether Redis keeps what Moments wrote across its restarts, read every half minute by
every worker and API process into ``moments_redis_forgetful`` (alert
MomentsRedisForgetful). A restart is noticed by a node's run id, and one that lost the
store's data (a node that held keys came back with none, or the layout mark is gone:
Redis came back empty, or from a snapshot older than the mark) is said in an error,
counted in ``moments_redis_data_lost_total`` (alert MomentsRedisLostData), and the mark
put back. The process that finds the loss first records it in the store
(``<prefix>:data-lost``, the restarted run ids) before putting the mark back; every other
process finds that record changed at its next reading and says and counts the loss too
(by then the mark is back and keys are written again, which read as a restart that kept
everything).

Redis is the system of record for erasure blocks, consent withdrawals kept apart and the
events applied: a Redis that restarts without an append-only file goes back to its last
snapshot, and an erased customer comes back, an event counts twice."""

from __future__ import annotations

import asyncio
import logging

from feature_store import FeatureStore, RedisDurability
from streams.metrics import Metrics

log = logging.getLogger(__name__)

CHECK_EVERY_S = 30.0
LOST = (
    "Redis restarted without the data Moments wrote ({how}). Erasures, consent "
    "withdrawals and the record of applied events are gone with it: an erased customer's "
    "late events make them again, a replayed event counts twice. Run `moments rebuild "
    "--force` into it (the topics hold all of it, erasures included), and keep an "
    "append-only file (appendonly yes)"
)
FORGETFUL = (
    "Redis restarted, or failed over, and keeps no append-only file: if it restarted, it "
    "came back as of its last snapshot, and what it was given since (erasures, consent "
    "withdrawals, applied events) is gone; then run `moments rebuild --force` into it. "
    "Set appendonly yes"
)


class RedisRestartWatch:
    """Reads whether Redis keeps an append-only file; says when it restarted, and what
    the restart lost: a node that held keys and came back with none, the store's layout
    mark gone (one this watch saw: a Redis left unmarked at start stays so), or a loss
    another process recorded since this watch's last reading. A loss recorded before
    its first reading is not told: a process started after it cannot know."""

    def __init__(self, store: FeatureStore, metrics: Metrics, within_s: float = 5.0) -> None:
        self._store = store
        self._metrics = metrics
        self._within_s = within_s
        self._nodes: dict[str, RedisDurability] | None = None  # as last read
        self._marked = False  # the layout mark was there at a reading before
        self._lost_at: str | None = None  # the store's record of a loss, as last read

    async def check(self) -> str | None:
        """Read Redis now; returns what was found of a restart since the last reading
        (``kept``, ``forgotten``: no append-only file, ``lost``), None when there was
        none or Redis did not answer within ``within_s``."""
        try:
            async with asyncio.timeout(self._within_s):
                nodes = await self._store.server.durability()
                if not self._marked:  # once marked (a rebuild marks one), it stays so
                    self._marked = await self._store.layout.read() is not None
                lost_at = await self._store.layout.lost_at()
        except Exception as exc:  # unreachable, or INFO refused: no word
            log.debug("Redis's persistence could not be read: %s", type(exc).__name__)
            return None
        if any(n.loading for n in nodes.values()):  # it says aof_enabled:0, few keys, then
            return None  # read once it has loaded
        forgetful = any(not n.append_only for n in nodes.values())
        self._metrics.redis_forgetful.set(1 if forgetful else 0)
        was = self._nodes
        if was is None:
            self._nodes, self._lost_at = nodes, lost_at
            return None
        restarted = [n for n, now in nodes.items() if n in was and now.run_id != was[n].run_id]
        told = lost_at != self._lost_at  # another process found a loss since (or the record
        if not restarted and not told:  # itself went: lost with its node)
            self._nodes = nodes
            return None
        emptied = [n for n in restarted
                   if nodes[n].primary and nodes[n].keys == 0 and was[n].keys > 0]  # fmt: skip
        try:
            async with asyncio.timeout(self._within_s):
                unmarked = bool(restarted) and self._marked and (
                    await self._store.layout.read() is None)  # fmt: skip
                if emptied or unmarked:  # recorded first: the mark back alone reads as kept
                    lost_at = " ".join(sorted(nodes[n].run_id for n in restarted))
                    await self._store.layout.note_lost(lost_at)
                if unmarked:
                    await self._store.layout.mark()
        except Exception as exc:  # unreachable again: the next reading asks again
            log.debug("Redis's layout mark could not be read: %s", type(exc).__name__)
            return None
        self._nodes, self._lost_at = nodes, lost_at
        if emptied or unmarked or told:
            self._metrics.redis_data_lost.inc()
            log.error(LOST.format(how=_how(len(emptied), unmarked, lost_at)))
            return "lost"
        if any(not was[n].append_only or not nodes[n].append_only for n in restarted):
            log.warning(FORGETFUL)
            return "forgotten"
        log.info("Redis restarted; its append-only file kept what Moments wrote")
        return "kept"

    async def keep_watching(self, every_s: float = CHECK_EVERY_S) -> None:
        """Check every ``every_s`` until cancelled."""
        while True:
            await self.check()
            await asyncio.sleep(every_s)


def _how(emptied: int, unmarked: bool, lost_at: str | None) -> str:
    """How the loss was found, for the error.

    >>> _how(0, True, "r2")
    'its layout mark is gone'
    >>> _how(1, False, "r2")
    '1 of its nodes came back empty'
    >>> _how(0, False, "r2")
    'another Moments process found it lost after Redis started as run r2'
    """
    if unmarked:
        return "its layout mark is gone"
    if emptied:
        return f"{emptied} of its nodes came back empty"
    if lost_at is None:
        return "the record of an earlier loss is gone too"
    return f"another Moments process found it lost after Redis started as run {lost_at}"
