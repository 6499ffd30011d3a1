"""The restart watch's reading of a node that is still loading its data: Redis answers
INFO then with aof_enabled:0 and few or no keys, which read as a node that came back
empty without its append-only file (a false loss, a critical alert, rebuild advised)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from feature_store import RedisDurability
from streams.metrics import Metrics
from streams.redis_restarts import RedisRestartWatch


def store_reading(readings: list[dict[str, RedisDurability]]) -> Any:
    async def durability() -> dict[str, RedisDurability]:
        return readings.pop(0)

    async def read() -> str:
        return "1"  # the mark, on another node of the cluster

    async def lost_at() -> None:
        return None

    return SimpleNamespace(server=SimpleNamespace(durability=durability),
                           layout=SimpleNamespace(read=read, lost_at=lost_at))  # fmt: skip


async def test_a_node_still_loading_is_read_once_it_has_loaded() -> None:
    up = RedisDurability("run-1", append_only=True, keys=1000)
    loading = RedisDurability("run-2", append_only=False, keys=0, loading=True)
    loaded = RedisDurability("run-2", append_only=True, keys=1000)
    other = RedisDurability("run-9", append_only=True, keys=900)
    metrics = Metrics()
    watch = RedisRestartWatch(store_reading([
        {"a": up, "b": other}, {"a": loading, "b": other}, {"a": loaded, "b": other},
    ]), metrics)  # fmt: skip
    assert await watch.check() is None
    assert await watch.check() is None  # no word while it loads
    assert metrics.redis_forgetful._value.get() == 0
    assert await watch.check() == "kept"
    assert metrics.redis_data_lost._value.get() == 0
