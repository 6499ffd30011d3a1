"""What a worker's ``moments_dependency_up{dependency="kafka"}`` rests on: whether its group
coordinator answers, whatever the worker holds. A broker frozen for 5 minutes raised no
alert: the worker's /readyz said Kafka was down, and no metric did."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from streams.metrics import Metrics
from streams.worker_readiness import (
    COORDINATOR_AWAY,
    coordinator_answers,
    kafka_readiness,
    watch_coordinator,
)


def test_a_coordinator_unknown_is_kafka_away_even_on_a_worker_without_partitions() -> None:
    """A worker given no partition (more workers than partitions), or rebalancing, is
    not ready for that reason alone: its Kafka still is known to be up or down."""
    gone = SimpleNamespace(coordinator_id=None)
    assert kafka_readiness(False, False, gone) == "no partitions assigned yet"
    assert kafka_readiness(True, True, gone) == "rebalancing"
    assert kafka_readiness(False, True, gone) == COORDINATOR_AWAY
    assert not coordinator_answers(gone)
    assert coordinator_answers(SimpleNamespace(coordinator_id=1))


async def test_a_heartbeat_waiting_past_the_session_timeout_shows_kafka_down() -> None:
    now, answer = [100.0], asyncio.Event()

    async def send(request: object) -> str:
        await answer.wait()
        return "answered"

    coordinator = SimpleNamespace(coordinator_id=1, _send_req=send)
    watch_coordinator(coordinator, clock=lambda: now[0])
    metrics = Metrics()
    beat = asyncio.ensure_future(coordinator._send_req("heartbeat"))
    await asyncio.sleep(0)
    now[0] = 110.0  # waited as long as the session timeout: not yet
    metrics.dependency_seen("kafka", coordinator_answers(coordinator, 10.0, lambda: now[0]))
    text = metrics.exposition().decode()
    assert 'moments_dependency_up{dependency="kafka"} 1.0' in text
    now[0] = 111.0
    metrics.dependency_seen("kafka", coordinator_answers(coordinator, 10.0, lambda: now[0]))
    assert 'moments_dependency_up{dependency="kafka"} 0.0' in metrics.exposition().decode()
    answer.set()
    await beat
    assert coordinator_answers(coordinator, 10.0, lambda: now[0])


def test_no_dependency_is_said_up_or_down_before_it_was_looked_at() -> None:
    """No series until the first look (a few seconds): not a 1 the process never saw."""
    assert "moments_dependency_up{" not in Metrics().exposition().decode()
