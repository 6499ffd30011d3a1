"""Reading how full Redis is from its INFO replies (pure)."""

from __future__ import annotations

import pytest

from feature_store import RedisMemory, evicting_policy, fullest


@pytest.mark.parametrize(
    "info",
    [{}, {"used_memory": 10}, {"used_memory": "many", "maxmemory_policy": "noeviction"},
     {"used_memory": None, "maxmemory_policy": "noeviction"}],
)  # fmt: skip
def test_a_reply_without_the_figures_reads_as_none(info: dict[str, object]) -> None:
    assert RedisMemory.from_info(info) is None


def test_a_node_without_a_limit_has_no_fraction_and_counts_only_when_none_has_one() -> None:
    unlimited = RedisMemory.from_info({"used_memory": 10**9, "maxmemory_policy": "noeviction"})
    assert unlimited == RedisMemory(10**9, 0, "noeviction")
    assert unlimited.used_fraction is None
    small = RedisMemory(10, 100, "noeviction")
    assert fullest([unlimited, small]) is small
    assert fullest([unlimited, RedisMemory(5, 0, "noeviction")]) is unlimited


def test_every_policy_but_noeviction_evicts() -> None:
    nodes = [RedisMemory(1, 0, p) for p in ("noeviction", "volatile-lru", "allkeys-lfu")]
    assert [n.evicts for n in nodes] == [False, True, True]
    assert evicting_policy(nodes) == "volatile-lru"
    assert evicting_policy(nodes[:1]) is None
