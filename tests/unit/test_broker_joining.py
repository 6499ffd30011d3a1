"""A start waits out a Kafka that answers but names no broker yet, and nothing else."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiokafka.errors import KafkaConnectionError, NodeNotReadyError, StaleMetadata

from streams.topics import once_a_broker_joins


class Cluster:
    """Answers ``NodeNotReadyError`` or ``StaleMetadata`` for its first ``fenced`` asks."""

    def __init__(self, fenced: int, error: type[Exception] = NodeNotReadyError) -> None:
        self.fenced, self.error, self.asked = fenced, error, 0

    async def list_topics(self) -> list[str]:
        self.asked += 1
        if self.asked <= self.fenced:
            raise self.error("Broker id None not in current metadata")
        return ["touchpoints"]


@pytest.mark.parametrize("error", [NodeNotReadyError, StaleMetadata])
def test_a_broker_that_joins_in_time_is_used_and_the_wait_said_once(
    error: type[Exception], caplog: pytest.LogCaptureFixture
) -> None:
    cluster = Cluster(fenced=4, error=error)
    with caplog.at_level(logging.WARNING, logger="streams.topics"):
        got = asyncio.run(once_a_broker_joins(cluster.list_topics, "k:9092", 5, 0.001))
    assert got == ["touchpoints"] and cluster.asked == 5
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "Kafka at k:9092 answers but names no broker" in said[0], said


def test_a_broker_that_does_not_join_in_time_is_the_error_the_start_stops_with() -> None:
    cluster = Cluster(fenced=10**6)
    with pytest.raises(NodeNotReadyError):
        asyncio.run(once_a_broker_joins(cluster.list_topics, "k:9092", 0.05, 0.01))
    assert 2 <= cluster.asked <= 6  # tried again until the time was up, then no more


def test_other_errors_are_not_waited_for() -> None:
    asked = 0

    async def unreachable() -> None:
        nonlocal asked
        asked += 1
        raise KafkaConnectionError("Unable to bootstrap from [('k', 9092)]")

    with pytest.raises(KafkaConnectionError):
        asyncio.run(once_a_broker_joins(unreachable, "k:9092", 5, 0.001))
    assert asked == 1
