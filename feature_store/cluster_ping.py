"""Whether every primary of a Redis Cluster answers. redis-py's PING asks one node (the
one holding slot 0); a lost or frozen other master holds a share of the customers. A
primary that does not answer has the cluster's map read again, in the background, asking
it last: once its replica has taken its slots over, the next look asks the new primary
(a cancelled PING never lets redis-py read the map again itself). The map is also read
again when the last reading is :data:`MAP_KEPT_S` old, so that a primary added since is
asked too."""

from __future__ import annotations

import asyncio
import contextlib
import time

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode

MAP_KEPT_S = 30.0


class ClusterPing:
    def __init__(self, client: aioredis.RedisCluster) -> None:
        self._client = client
        self._rereading: asyncio.Task[None] | None = None
        self._read_at = time.monotonic()  # when the map was last read again
        self._closed = False

    async def silent_primaries(self, within_s: float) -> list[tuple[str, BaseException]]:
        """The primaries that did not answer a PING within ``within_s`` (each asked at
        once), by name, with why (a :class:`TimeoutError` for no answer)."""
        await self._client.initialize()  # the map, if it was not read yet
        primaries = self._client.get_primaries()
        answers = await asyncio.gather(*(self._ping(node, within_s) for node in primaries))
        silent = [(node.name, answer) for node, answer in zip(primaries, answers, strict=True)
                  if answer is not None]  # fmt: skip
        if silent:
            self._reread_map(silent[0][0])
        elif time.monotonic() - self._read_at >= MAP_KEPT_S:
            self._reread_map(None)
        return silent

    async def _ping(self, node: ClusterNode, within_s: float) -> BaseException | None:
        try:
            async with asyncio.timeout(within_s):
                answered = await self._client.ping(target_nodes=node)
        except Exception as exc:
            return exc
        return None if answered else RuntimeError("PING was not answered PONG")

    def _reread_map(self, silent: str | None) -> None:
        if self._closed or (self._rereading is not None and not self._rereading.done()):
            return
        self._read_at = time.monotonic()
        self._rereading = asyncio.create_task(self._reread(silent))

    async def _reread(self, silent: str | None) -> None:
        with contextlib.suppress(Exception):  # the next look tries again
            await self._client.nodes_manager.initialize(last_failed_node_name=silent)

    def close(self) -> None:
        self._closed = True
        if self._rereading is not None:
            self._rereading.cancel()
