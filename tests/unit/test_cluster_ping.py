"""feature_store.cluster_ping: each primary is asked apart, and the cluster's map is read
again after a silent primary, and when the last reading is old (a primary added since)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from feature_store import cluster_ping
from feature_store.cluster_ping import ClusterPing


class Cluster:
    """Primaries by name; ``silent``: those that never answer."""

    def __init__(self, *names: str) -> None:
        self.primaries = [SimpleNamespace(name=n) for n in names]
        self.silent: set[str] = set()
        self.rereads: list[str | None] = []
        self.nodes_manager = SimpleNamespace(initialize=self._reread)

    async def initialize(self) -> None:
        pass

    def get_primaries(self) -> list[Any]:
        return list(self.primaries)

    async def ping(self, target_nodes: Any) -> bool:
        if target_nodes.name in self.silent:
            await asyncio.sleep(60)
        return True

    async def _reread(self, last_failed_node_name: str | None = None) -> None:
        self.rereads.append(last_failed_node_name)


async def test_a_silent_primary_is_named_and_the_map_read_again_asking_it_last() -> None:
    cluster = Cluster("a:1", "b:2", "c:3")
    ping = ClusterPing(cluster)  # type: ignore[arg-type]
    assert await ping.silent_primaries(0.05) == []
    cluster.silent.add("b:2")
    (silent,) = await ping.silent_primaries(0.05)
    assert silent[0] == "b:2" and isinstance(silent[1], TimeoutError)
    await asyncio.sleep(0)
    assert cluster.rereads == ["b:2"]
    ping.close()


async def test_the_map_is_read_again_when_old_so_that_a_primary_added_since_is_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A master added after the map was read was never asked: frozen, it left /readyz ok
    while its customers' recommendations fell back."""
    cluster = Cluster("a:1")
    ping = ClusterPing(cluster)  # type: ignore[arg-type]
    await ping.silent_primaries(0.05)
    await asyncio.sleep(0)
    assert cluster.rereads == []  # read just now
    monkeypatch.setattr(cluster_ping, "MAP_KEPT_S", 0.0)
    await ping.silent_primaries(0.05)
    await asyncio.sleep(0)
    assert cluster.rereads == [None]
    ping.close()
    await ping.silent_primaries(0.05)  # closed: nothing more is started
    await asyncio.sleep(0)
    assert cluster.rereads == [None]
