"""How full Redis is: what each node holds against its ``maxmemory``, and whether it may
evict keys to make room. With ``noeviction`` a full Redis refuses writes (the workers
wait it out, events stay in Kafka and recommendations fall back); with any other policy
it drops keys, an erasure's block or an event's dedupe mark among them.

>>> node = RedisMemory.from_info({"used_memory": 900, "maxmemory": 1000,
...                               "maxmemory_policy": "noeviction"})
>>> node.used_fraction, node.evicts
(0.9, False)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

NO_EVICTION = "noeviction"


@dataclass(frozen=True, slots=True)
class RedisMemory:
    """One Redis node's memory, as ``INFO memory`` reports it."""

    used_bytes: int
    max_bytes: int  # 0: no limit set (Redis grows until the machine runs out)
    policy: str  # maxmemory-policy

    @classmethod
    def from_info(cls, info: Mapping[str, Any]) -> RedisMemory | None:
        """The node's memory from its ``INFO memory`` reply; None for a reply without
        the figures (a proxy's, say)."""
        try:
            return cls(int(info["used_memory"]), int(info.get("maxmemory", 0)),
                       str(info["maxmemory_policy"]))  # fmt: skip
        except (KeyError, TypeError, ValueError):
            return None

    @property
    def used_fraction(self) -> float | None:
        """Used memory over the limit; None without a limit."""
        return self.used_bytes / self.max_bytes if self.max_bytes > 0 else None

    @property
    def evicts(self) -> bool:
        """Whether the node may drop keys when full."""
        return self.policy != NO_EVICTION


def fullest(nodes: Sequence[RedisMemory]) -> RedisMemory | None:
    """The node nearest its limit (of a cluster's; nodes without a limit count only
    when none has one, then the one using most).

    >>> a, b = RedisMemory(500, 1000, "noeviction"), RedisMemory(700, 2000, "noeviction")
    >>> fullest([a, b]) is a, fullest([RedisMemory(9, 0, "noeviction"), b]) is b
    (True, True)
    >>> fullest([]) is None
    True
    """
    limited = [n for n in nodes if n.max_bytes > 0]
    if limited:
        return max(limited, key=lambda n: n.used_bytes / n.max_bytes)
    return max(nodes, key=lambda n: n.used_bytes, default=None)


def evicting_policy(nodes: Sequence[RedisMemory]) -> str | None:
    """The policy of the first node that may evict keys; None when none may.

    >>> evicting_policy([RedisMemory(1, 0, "noeviction"), RedisMemory(1, 0, "allkeys-lru")])
    'allkeys-lru'
    """
    return next((n.policy for n in nodes if n.evicts), None)
