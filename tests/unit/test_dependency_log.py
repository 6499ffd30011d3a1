"""The API's log of Redis and Kafka outages: one line when each begins, one when it ends."""

from __future__ import annotations

import asyncio
import logging

import pytest

from streams.api.dependency_watch import LOOK_AGAIN_AFTER_S, DependencyLog, show_in_metrics
from streams.api.kafka_health import KafkaHealth
from streams.metrics import Metrics
from tests.unit.logged import said_by


async def test_requests_and_looks_together_log_an_outage_once_and_its_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    outages = DependencyLog(clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="streams.api.dependency_watch"):
        for _ in range(100):  # requests falling back, one after another
            outages.saw("redis", False)
        now[0] = 7.0
        outages.saw("kafka", True)  # the look every few seconds
        outages.saw("redis", True)
        outages.saw("redis", True)
    assert [r.getMessage() for r in said_by(caplog, "streams.api.dependency_watch")] == [
        "Redis cannot be reached: recommendations are the default offers, profiles 503",
        "Redis is reachable again, after 7 s",
    ]


async def test_a_request_in_trouble_makes_the_watch_look_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    up = [True]

    async def redis_ok() -> bool:
        return up[0]

    outages = DependencyLog()
    with caplog.at_level(logging.WARNING, logger="streams.api.dependency_watch"):
        watch = asyncio.create_task(outages.keep_watching(redis_ok, lambda: None, every_s=60))
        await asyncio.sleep(0.05)  # its first look: all well, nothing said
        assert said_by(caplog, "streams.api.dependency_watch") == []
        up[0] = False
        outages.look_now()  # a recommendation fell back: not a minute later
        for _ in range(100):  # within LOOK_AGAIN_AFTER_S, on a machine not too busy
            await asyncio.sleep(0.05)
            if said_by(caplog, "streams.api.dependency_watch"):
                break
        watch.cancel()
    assert [r.getMessage() for r in said_by(caplog, "streams.api.dependency_watch")] == [
        "Redis cannot be reached: recommendations are the default offers, profiles 503"
    ]
    assert outages.away("redis")


async def test_answers_asking_for_looks_all_the_time_get_one_so_often() -> None:
    """Under load every answer out of time asks for a look: Redis is pinged at most every
    LOOK_AGAIN_AFTER_S, not back to back."""
    looks = [0]

    async def redis_ok() -> bool:
        looks[0] += 1
        return True

    outages = DependencyLog()
    loop = asyncio.get_running_loop()
    started = loop.time()
    watch = asyncio.create_task(outages.keep_watching(redis_ok, lambda: None, every_s=60))
    for _ in range(100):  # a second of answers out of time
        outages.look_now()
        await asyncio.sleep(0.01)
    watch.cancel()
    took = loop.time() - started
    assert 2 <= looks[0] <= 1 + took / LOOK_AGAIN_AFTER_S + 1, (looks, took)


async def said_within(caplog: pytest.LogCaptureFixture, lines: int, at_most_s: float = 5) -> None:
    """Until the log holds ``lines`` lines (a busy machine runs the watch late)."""
    for _ in range(int(at_most_s / 0.01)):
        if len(said_by(caplog, "streams.api.dependency_watch")) >= lines:
            return
        await asyncio.sleep(0.01)


async def test_a_kafka_outage_is_timed_from_the_brokers_last_answer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """It is found away only 10 s after the broker's last answer: a 60 s outage was
    logged as lasting 50 s."""
    now, last_answer = [1000.0], [None]

    async def redis_ok() -> bool:
        return True

    outages = DependencyLog(clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="streams.api.dependency_watch"):
        watch = asyncio.create_task(
            outages.keep_watching(redis_ok, lambda: last_answer[0], every_s=0.01)
        )
        await asyncio.sleep(0.05)
        last_answer[0], now[0] = 990.0, 1000.0  # type: ignore[assignment]  # found away now
        await said_within(caplog, 1)
        last_answer[0], now[0] = None, 1050.0  # back
        await said_within(caplog, 2)
        watch.cancel()
    said = [r.getMessage() for r in said_by(caplog, "streams.api.dependency_watch")]
    assert said[0].startswith("Kafka cannot be used") and said[1:] == [
        "Kafka is reachable again, after 60 s"
    ], said


def test_the_dependency_gauges_say_what_readyz_says_as_it_lasts() -> None:
    """Both /readyz said Kafka was down for a 5 minute outage, and no metric did: no
    alert went off. They say it from what the process saw last, asking nothing more."""
    now, answered = [100.0], [None]  # the broker has not answered a fetch yet
    kafka = KafkaHealth(lambda: answered[0], stale_s=10, clock=lambda: now[0])
    outages, metrics = DependencyLog(clock=lambda: now[0]), Metrics()
    show_in_metrics(metrics, outages, kafka)

    def up() -> dict[str, float | None]:
        sample = metrics.registry.get_sample_value
        return {d: sample("moments_dependency_up", {"dependency": d}) for d in ("redis", "kafka")}

    assert up() == {"redis": 1.0, "kafka": 0.0}  # connecting: not ok for /readyz either
    answered[0] = 100.0
    assert up() == {"redis": 1.0, "kafka": 1.0}
    now[0] = 111.0  # no fetch answered for over 10 s
    outages.saw("redis", False)
    assert up() == {"redis": 0.0, "kafka": 0.0}
    assert 'moments_dependency_up{dependency="kafka"} 0.0' in metrics.exposition().decode()
    answered[0] = 110.5
    outages.saw("redis", True)
    assert up() == {"redis": 1.0, "kafka": 1.0}
