"""The Redis server behind the store, as operators need to see it: how full each node is,
whether it may evict keys (:mod:`feature_store.redis_memory` reads the figures), and
which version it runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from feature_store.connection import StoreConnection
from feature_store.redis_errors import unavailable_when_transient
from feature_store.redis_memory import RedisMemory


@dataclass(frozen=True)
class RedisDurability:
    """What a restart of one Redis node would keep, and what it holds."""

    run_id: str  # changes each time the node starts
    append_only: bool  # it keeps an append-only file: a restart keeps its writes
    keys: int  # in all its databases
    primary: bool = True  # not a replica (which comes back empty, then copies its primary)
    loading: bool = False  # still reading its files: the rest is not yet what it will be

    @classmethod
    def from_info(cls, info: dict[Any, Any]) -> RedisDurability:
        """From the node's ``INFO server persistence keyspace replication`` reply."""
        keys = sum(int(v.get("keys", 0)) for k, v in info.items()
                   if str(k).startswith("db") and isinstance(v, dict))  # fmt: skip
        primary = str(info.get("role", "master")) == "master"
        loading = str(info.get("loading", "0")) == "1"
        return cls(str(info.get("run_id", "")), str(info.get("aof_enabled")) == "1", keys,
                   primary, loading)  # fmt: skip


class RedisServer:
    """Memory and eviction policy of the store's Redis (every node of a cluster)."""

    def __init__(self, conn: StoreConnection) -> None:
        self._conn = conn

    async def eviction_policy(self) -> str | None:
        """Redis's ``maxmemory-policy`` (on a cluster, the first node's that is not
        ``noeviction``), from ``INFO memory``, which managed services answer though they
        refuse ``CONFIG``, else ``CONFIG GET``; None where neither answers."""
        for read in (self._policies_in_info, self._policies_in_config):
            try:
                policies = await read()
            except Exception:  # refused, unreachable, a cluster not formed: no word
                continue
            if policies:
                return next((p for p in policies if p != "noeviction"), policies[0])
        return None

    async def oldest_version(self) -> tuple[int, ...] | None:
        """The oldest ``redis_version`` among the nodes (``INFO server``), as numbers;
        None where it cannot be read (refused, unreachable, a version not in numbers)."""
        client = self._conn.client
        try:
            if isinstance(client, aioredis.RedisCluster):
                per_node: dict[Any, Any] = await client.info(
                    "server", target_nodes=aioredis.RedisCluster.ALL_NODES
                )
                answers = list(per_node.values()) if "redis_version" not in per_node else [per_node]
            else:
                answers = [await client.info("server")]
        except Exception:  # no word: the caller says so
            return None
        versions = [
            _numbers(str(a.get("redis_version", ""))) for a in answers if isinstance(a, dict)
        ]
        known = [v for v in versions if v is not None]
        return min(known) if known and len(known) == len(versions) else None

    async def memory(self) -> list[RedisMemory]:
        """What each Redis node holds against its limit, and its ``maxmemory-policy``
        (``INFO memory``, which managed services answer too). Raises
        :class:`StoreUnavailable` when Redis cannot be reached."""
        with unavailable_when_transient():
            answers = await self._memory_infos()
        return [m for m in map(RedisMemory.from_info, answers) if m is not None]

    async def durability(self) -> dict[str, RedisDurability]:
        """Each node's run id, whether it keeps an append-only file, how many keys it
        holds and whether it is a primary (``INFO server persistence keyspace
        replication``), by node (``"server"`` for a single one). Raises
        :class:`StoreUnavailable` when Redis cannot be reached (:class:`StoreRefused`
        when it refuses ``INFO``)."""
        client = self._conn.client
        with unavailable_when_transient():
            if isinstance(client, aioredis.RedisCluster):  # every node, replicas too
                per_node: dict[Any, Any] = await client.info(
                    "server", "persistence", "keyspace", "replication",
                    target_nodes=aioredis.RedisCluster.ALL_NODES,
                )  # fmt: skip
                answers = {"server": per_node} if "run_id" in per_node else per_node
            else:
                answers = {
                    "server": await client.info("server", "persistence", "keyspace", "replication")
                }
        return {str(node): RedisDurability.from_info(a) for node, a in answers.items()
                if isinstance(a, dict)}  # fmt: skip

    async def _memory_infos(self) -> list[dict[Any, Any]]:
        return await self._infos("memory", "maxmemory_policy")

    async def _infos(self, section: str, field: str) -> list[dict[Any, Any]]:
        """Every node's ``INFO section`` (``field``: one of its fields, which tells a
        single node's answer from a cluster's answers by node)."""
        client = self._conn.client
        if isinstance(client, aioredis.RedisCluster):  # every node: each has its own
            per_node: dict[Any, Any] = await client.info(
                section, target_nodes=aioredis.RedisCluster.ALL_NODES
            )
            answers = list(per_node.values()) if field not in per_node else [per_node]
        else:
            answers = [await client.info(section)]
        return [a for a in answers if isinstance(a, dict)]

    async def _policies_in_info(self) -> list[str]:
        answers = await self._memory_infos()
        return [str(a["maxmemory_policy"]) for a in answers if "maxmemory_policy" in a]

    async def _policies_in_config(self) -> list[str]:
        client = self._conn.client
        answers: list[dict[Any, Any]]
        if isinstance(client, aioredis.RedisCluster):
            per_node: dict[Any, Any] = await client.config_get(
                "maxmemory-policy", target_nodes=aioredis.RedisCluster.ALL_NODES
            )  # {node: {"maxmemory-policy": ...}}
            answers = list(per_node.values())
        else:
            answers = [await client.config_get("maxmemory-policy")]
        return [str(a["maxmemory-policy"]) for a in answers if "maxmemory-policy" in a]


def _numbers(version: str) -> tuple[int, ...] | None:
    """``"7.2.4"`` as ``(7, 2, 4)``; None for what is not dotted numbers.

    >>> _numbers("7.2.4"), _numbers("6.2.14"), _numbers("unstable")
    ((7, 2, 4), (6, 2, 14), None)
    """
    parts = version.split(".")
    return tuple(int(p) for p in parts) if all(p.isdecimal() for p in parts) else None
