"""``moments rebuild`` that Redis fails on the way: a plain exit code and what to do, not
a traceback. (The rebuild itself, on real Kafka and Redis, is in tests/integration.)"""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from feature_store import StoreUnavailable
from streams import cli, rebuild
from streams.settings import Settings


class ClosedStore:
    async def close(self) -> None:
        pass


def test_an_outage_half_way_exits_3_and_says_to_run_it_again(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def failing(*args: Any, **kwargs: Any) -> None:
        raise StoreUnavailable("ConnectionError: Redis went away")

    monkeypatch.setattr(rebuild, "rebuild", failing)
    monkeypatch.setattr("streams.app.build_store", lambda settings, redis_url=None: ClosedStore())
    args = argparse.Namespace(redis_url=None, force=False, accept_lost_erasures=False)
    assert cli.cmd_rebuild(args, Settings()) == 3
    said = capsys.readouterr().err
    assert "Redis became unavailable" in said and "--force" in said


def test_a_redis_that_cannot_be_reached_at_the_start_exits_2_without_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Nothing is written yet: it cannot start (exit 2), as the README says; it used to
    end in a traceback, redis-py's connection error escaping the first look at Redis."""
    args = argparse.Namespace(
        redis_url="redis://127.0.0.1:1/0", force=False, accept_lost_erasures=False
    )
    assert cli.cmd_rebuild(args, Settings(kafka_bootstrap="127.0.0.1:1")) == 2
    assert "the target Redis cannot be reached" in capsys.readouterr().err


def test_an_interrupted_rebuild_says_the_target_holds_part_of_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(rebuild, "rebuild", interrupted)
    monkeypatch.setattr("streams.app.build_store", lambda settings, redis_url=None: ClosedStore())
    args = argparse.Namespace(redis_url=None, force=False, accept_lost_erasures=False)
    assert cli.cmd_rebuild(args, Settings()) == 130
    said = capsys.readouterr().err
    assert "interrupted" in said and "--force" in said


def test_kafka_failing_on_the_way_exits_3_and_says_to_run_it_again(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from aiokafka.errors import KafkaConnectionError

    async def failing(*args: Any, **kwargs: Any) -> None:
        raise KafkaConnectionError("the broker went away")

    monkeypatch.setattr(rebuild, "rebuild", failing)
    monkeypatch.setattr("streams.app.build_store", lambda settings, redis_url=None: ClosedStore())
    args = argparse.Namespace(redis_url=None, force=False, accept_lost_erasures=False)
    assert cli.cmd_rebuild(args, Settings()) == 3
    said = capsys.readouterr().err
    assert "cannot use Kafka at" in said and "--force" in said
