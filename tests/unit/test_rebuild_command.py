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
