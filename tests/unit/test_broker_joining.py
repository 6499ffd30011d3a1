"""A start waits out a Kafka that answers but names no broker yet, and nothing else."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import pytest
from aiokafka.errors import KafkaConnectionError, NodeNotReadyError

from streams import topics
from streams.settings import Settings
from streams.topics import NoBrokerYet, once_a_broker_joins


class Cluster:
    """Names no broker for its first ``fenced`` asks."""

    def __init__(self, fenced: int) -> None:
        self.fenced, self.asked = fenced, 0

    async def list_topics(self) -> list[str]:
        self.asked += 1
        if self.asked <= self.fenced:
            raise NoBrokerYet("the metadata Kafka answered with names no broker")
        return ["touchpoints"]


def test_a_broker_that_joins_in_time_is_used_and_the_wait_said_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cluster = Cluster(fenced=4)
    with caplog.at_level(logging.WARNING, logger="streams.topics"):
        got = asyncio.run(once_a_broker_joins(cluster.list_topics, "k:9092", 5, 0.001))
    assert got == ["touchpoints"] and cluster.asked == 5
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "Kafka at k:9092 answers but names no broker" in said[0], said


def test_a_broker_that_does_not_join_in_time_is_the_error_the_start_stops_with() -> None:
    cluster = Cluster(fenced=10**6)
    with pytest.raises(NoBrokerYet):
        asyncio.run(once_a_broker_joins(cluster.list_topics, "k:9092", 0.05, 0.01))
    assert 2 <= cluster.asked <= 6  # tried again until the time was up, then no more


@pytest.mark.parametrize(
    "error",
    [
        KafkaConnectionError("Unable to bootstrap from [('k', 9092)]"),
        # a broker named whose advertised address cannot be used: waiting will not help
        NodeNotReadyError("Attempt to send a request to node which is not ready (node id 1)."),
    ],
)
def test_other_errors_are_not_waited_for(error: Exception) -> None:
    asked = 0

    async def unusable() -> None:
        nonlocal asked
        asked += 1
        raise error

    with pytest.raises(type(error)):
        asyncio.run(once_a_broker_joins(unusable, "k:9092", 5, 0.001))
    assert asked == 1


class NamesNoBroker:
    """An admin client whose bootstrap answered with metadata naming no broker."""

    closed = 0

    def __init__(self, **options: object) -> None:
        self._client = SimpleNamespace(cluster=SimpleNamespace(brokers=set))

    async def start(self) -> None: ...

    async def list_topics(self) -> list[str]:
        raise AssertionError("asked with no broker to ask")

    async def close(self) -> None:
        NamesNoBroker.closed += 1


def test_metadata_naming_no_broker_is_waited_for_then_said(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(topics, "AIOKafkaAdminClient", NamesNoBroker)
    monkeypatch.setattr(topics, "BROKER_JOIN_WAIT_S", 0.05)
    monkeypatch.setattr(topics, "_BROKER_JOIN_PAUSE_S", 0.01)
    monkeypatch.setattr(NamesNoBroker, "closed", 0)
    with pytest.raises(NoBrokerYet, match="names no broker"):
        asyncio.run(topics.ensure_topics(Settings(kafka_bootstrap="k:9092")))
    assert NamesNoBroker.closed >= 2  # tried again, each admin client closed
