"""``moments rebuild`` that Redis or Kafka fails, or Ctrl-C stops, on the way: a plain exit
code and what to do, not a traceback. (The rebuild itself, on real Kafka and Redis, is in
tests/integration.)"""

from __future__ import annotations

import argparse
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError

from feature_store import StoreUnavailable
from streams import cli_repairs, rebuild
from streams.settings import Settings


class ClosedStore:
    async def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("stopped_by", "code", "said"),
    [
        (StoreUnavailable("ConnectionError: Redis went away"), 3, "Redis became unavailable"),
        (KafkaConnectionError("the broker went away"), 3, "cannot use Kafka at"),
        (KeyboardInterrupt(), 130, "interrupted"),  # Ctrl-C
    ],
    ids=["redis", "kafka", "ctrl-c"],
)
def test_a_rebuild_stopped_half_way_says_to_run_it_again_with_force(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    stopped_by: BaseException,
    code: int,
    said: str,
) -> None:
    async def stopped(*args: Any, **kwargs: Any) -> None:
        raise stopped_by

    monkeypatch.setattr(rebuild, "rebuild", stopped)
    monkeypatch.setattr(
        "streams.configured.build_store", lambda settings, redis_url=None: ClosedStore()
    )
    args = argparse.Namespace(redis_url=None, force=False, accept_lost_erasures=False)
    assert cli_repairs.cmd_rebuild(args, Settings()) == code
    err = capsys.readouterr().err
    assert said in err and "--force" in err


def test_a_redis_that_cannot_be_reached_at_the_start_exits_3_without_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Nothing is written yet: exit 3, to run it again later, as for a Kafka that cannot
    be reached (it was 2, as for a setting to change); it used to end in a traceback,
    redis-py's connection error escaping the first look at Redis."""
    args = argparse.Namespace(
        redis_url="redis://127.0.0.1:1/0", force=False, accept_lost_erasures=False
    )
    assert cli_repairs.cmd_rebuild(args, Settings(kafka_bootstrap="127.0.0.1:1")) == 3
    said = capsys.readouterr().err
    assert "the target Redis cannot be reached" in said and "nothing was written" in said
