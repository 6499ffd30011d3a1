"""A starting worker waits ``MOMENTS_REDIS_START_WAIT_S`` (a minute by default) for Redis
to answer its layout check, then starts without it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from streams import cli_processes, redis_checks, topics
from streams.services import free_port
from streams.settings import Settings, SettingsError


class Asked(Exception):
    """The layout check was asked for: the start goes no further here."""


@pytest.mark.parametrize(("env", "waited"), [({}, 60.0), ({"redis_start_wait_s": 5.0}, 5.0)])
def test_the_worker_waits_for_the_layout_check_as_long_as_it_is_told(
    env: dict[str, Any], waited: float, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[float] = []

    async def nothing(settings: Settings, *args: Any, **kwargs: Any) -> None:
        return None

    async def check(settings: Settings, within_s: float = 5.0, said: bool = True) -> str:
        asked.append(within_s)
        raise Asked

    monkeypatch.setattr(topics, "ensure_topics", nothing)
    monkeypatch.setattr(redis_checks, "warn_about_redis_setup", nothing)
    monkeypatch.setattr(redis_checks, "check_redis_layout", check)
    settings = Settings(data_dir=str(tmp_path), web_port=free_port(), **env)
    with pytest.raises(Asked):
        cli_processes.cmd_worker(argparse.Namespace(), settings)
    assert asked == [waited]


@pytest.mark.parametrize("seconds", ["0.5", "3601"])
def test_a_wait_out_of_bounds_is_refused(seconds: str) -> None:
    with pytest.raises(SettingsError, match="MOMENTS_REDIS_START_WAIT_S must be from 1 to 3600"):
        Settings.from_env({"MOMENTS_REDIS_START_WAIT_S": seconds})
