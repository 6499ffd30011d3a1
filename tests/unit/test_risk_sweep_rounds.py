"""A churn-risk sweep round when Redis or Kafka fails: skipped and counted, never a
crash, and no label lost (an example is sent before its snapshot is settled)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError
from redis.exceptions import ConnectionError as RedisConnectionError

from feature_store import PendingRisk, StoreUnavailable
from feature_store.keys import CustomerKeys
from feature_store.risk_snapshots import RiskSnapshots
from schemas.risk import RiskExample
from streams.risk_sweeper import sweep_round

DAY_MS = 86_400_000
NOW = datetime.fromtimestamp(60 * DAY_MS / 1000, UTC)  # day 60: a snapshot of day 0 lapsed
LAPSED = PendingRisk("subject-1", '{"x": {"experience": 0.2}, "ts_ms": 0}', last_seen_ms=0)


class Snapshots:
    """The store's ``risks``: pending snapshots, settled by compare-and-delete."""

    def __init__(self, pending: list[PendingRisk], outage: bool = False) -> None:
        self.kept = list(pending)
        self.outage = outage

    async def pending(
        self, unreadable: Callable[[int], None] | None = None
    ) -> AsyncIterator[list[PendingRisk]]:
        if self.outage:
            raise StoreUnavailable("ConnectionError: Redis went away")
        yield list(self.kept)

    async def erased(self, pending: Sequence[PendingRisk]) -> list[bool]:
        return [False for _ in pending]  # no one is

    async def settle(self, settled: Sequence[PendingRisk]) -> list[bool]:
        done = [p in self.kept for p in settled]
        self.kept = [p for p in self.kept if p not in settled]
        return done


class Learner:
    """The risk-examples topic as the learner reads it: an example id is learned once."""

    def __init__(self) -> None:
        self.learned: dict[str, RiskExample] = {}
        self.failing = False

    async def send(self, examples: list[RiskExample]) -> None:
        if self.failing:
            raise KafkaTimeoutError()
        for example in examples:
            self.learned.setdefault(example.example_id, example)


async def test_a_failed_send_keeps_the_snapshot_for_the_next_round() -> None:
    risks, learner = Snapshots([LAPSED]), Learner()
    skipped: list[str] = []
    store: Any = SimpleNamespace(risks=risks)
    learner.failing = True
    assert await sweep_round(store, learner.send, NOW, skipped.append) is None
    assert skipped == ["KafkaTimeoutError"] and risks.kept == [LAPSED]  # the label is not lost
    learner.failing = False
    swept = await sweep_round(store, learner.send, NOW, skipped.append)
    assert swept is not None and swept.lapsed == 1 and risks.kept == []
    (example,) = learner.learned.values()
    assert example.y is True and example.x == {"experience": 0.2}


async def test_a_round_sent_again_gives_the_learner_the_same_example() -> None:
    risks, learner = Snapshots([LAPSED]), Learner()
    store: Any = SimpleNamespace(risks=risks)
    sent: list[RiskExample] = []

    async def send(examples: list[RiskExample]) -> None:
        sent.extend(examples)
        await learner.send(examples)

    await sweep_round(store, send, NOW, lambda _: None)
    risks.kept = [LAPSED]  # as if the settle had not reached Redis
    await sweep_round(store, send, NOW, lambda _: None)
    assert len(sent) == 2 and sent[0].example_id == sent[1].example_id
    assert len(learner.learned) == 1


async def test_a_redis_outage_skips_the_round() -> None:
    store: Any = SimpleNamespace(risks=Snapshots([LAPSED], outage=True))
    skipped: list[str] = []
    assert await sweep_round(store, Learner().send, NOW, skipped.append) is None
    assert skipped == ["StoreUnavailable"]


async def test_the_scan_of_pending_snapshots_reports_an_outage_as_store_unavailable() -> None:
    async def scan_iter(**_: object) -> AsyncIterator[str]:
        yield "m:{abc}:p"
        raise RedisConnectionError("Connection refused")

    conn: Any = SimpleNamespace(client=SimpleNamespace(scan_iter=scan_iter))
    snapshots = RiskSnapshots(conn, CustomerKeys(b"s"))
    with pytest.raises(StoreUnavailable, match="Connection refused"):
        async for _ in snapshots.pending():
            pass
