"""A loss of the store's data is told by every process, not only the first to find it:
that one records it (``<prefix>:data-lost``) before putting the layout mark back, and the
others find the record changed. Without it they found the mark back and keys written
since, and logged that the append-only file kept everything."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from feature_store import RedisDurability
from streams.metrics import Metrics
from streams.redis_restarts import RedisRestartWatch


@dataclass
class FakeRedis:
    """One Redis as the watches read it: its nodes, the layout mark and the loss record."""

    nodes: dict[str, RedisDurability]
    mark: str | None = "1"
    lost: str | None = None
    marks_put_back: list[str] = field(default_factory=list)

    def store(self) -> Any:
        async def durability() -> dict[str, RedisDurability]:
            return dict(self.nodes)

        async def read() -> str | None:
            return self.mark

        async def lost_at() -> str | None:
            return self.lost

        async def note_lost(runs: str) -> None:
            self.lost = runs

        async def mark() -> None:
            self.mark = self.mark or "1"
            self.marks_put_back.append(self.lost or "")

        layout = SimpleNamespace(read=read, lost_at=lost_at, note_lost=note_lost, mark=mark)
        return SimpleNamespace(server=SimpleNamespace(durability=durability), layout=layout)


def node(run_id: str, keys: int = 100, primary: bool = True) -> RedisDurability:
    return RedisDurability(run_id, append_only=True, keys=keys, primary=primary)


async def test_the_processes_that_read_after_the_mark_was_put_back_say_the_loss() -> None:
    redis = FakeRedis({"server": node("r1")})
    metrics = [Metrics() for _ in range(3)]
    watches = [RedisRestartWatch(redis.store(), m) for m in metrics]
    assert [await w.check() for w in watches] == [None] * 3
    redis.nodes, redis.mark = {"server": node("r2", keys=0)}, None  # back empty
    assert await watches[0].check() == "lost"
    assert (redis.mark, redis.lost, redis.marks_put_back) == ("1", "r2", ["r2"])
    redis.nodes = {"server": node("r2", keys=40)}  # the workers wrote since
    assert [await w.check() for w in watches[1:]] == ["lost", "lost"]
    assert [m.redis_data_lost._value.get() for m in metrics] == [1, 1, 1]
    assert [await w.check() for w in watches] == [None] * 3


async def test_a_loss_record_gone_with_its_node_is_a_loss() -> None:
    redis = FakeRedis({"a": node("r1"), "b": node("r2")}, lost="r0")  # an earlier loss
    metrics = Metrics()
    watch = RedisRestartWatch(redis.store(), metrics)
    assert await watch.check() is None
    redis.lost = None  # its node came back empty and took writes again before the reading
    assert await watch.check() == "lost"
    assert metrics.redis_data_lost._value.get() == 1


async def test_a_failover_to_a_replica_that_kept_the_data_is_no_loss() -> None:
    """The replica promoted has its own run id; the old primary comes back as a replica
    (a new run id, empty until it has copied): the mark and the record stay as they
    were."""
    redis = FakeRedis({"a": node("r1"), "b": node("r2", primary=False)})
    metrics = Metrics()
    watch = RedisRestartWatch(redis.store(), metrics)
    assert await watch.check() is None
    redis.nodes = {"a": node("r3", keys=0, primary=False), "b": node("r2")}
    assert await watch.check() == "kept"
    assert metrics.redis_data_lost._value.get() == 0 and redis.lost is None


async def test_a_mark_put_back_by_an_older_version_goes_untold() -> None:
    """A rolling upgrade: the process that found the loss first writes no record, and
    the others cannot tell the mark it put back from one that was kept (a known limit)."""
    redis = FakeRedis({"server": node("r1")})
    watch = RedisRestartWatch(redis.store(), Metrics())
    assert await watch.check() is None
    redis.nodes = {"server": node("r2", keys=40)}  # mark put back, no record
    assert await watch.check() == "kept"
