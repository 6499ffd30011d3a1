"""A Redis that refuses the URL's login is said first, at start: the API and the worker
warned that they could not read Redis's version ("Moments needs Redis 7 or later"), its
append-only file and its eviction policy before the line that said Redis refused the
login, which sent an operator to upgrade Redis or change its persistence."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from redis.exceptions import AuthenticationError
from redis.exceptions import ConnectionError as RedisConnectionError

from feature_store import StoreUnavailable
from streams import redis_checks
from streams.redis_checks import warn_about_redis_setup
from streams.settings import Settings, SettingsError


class _Unread:
    """A Redis server whose INFO and CONFIG never answer (as a refused login's)."""

    async def oldest_version(self) -> None:
        return None

    async def eviction_policy(self) -> None:
        return None

    async def durability(self) -> Any:
        raise StoreUnavailable("AuthenticationError")


class _Store:
    def __init__(self, cause: Exception) -> None:
        self.server = _Unread()
        self.cause = cause

    async def ping(self, within_s: float = 1.0) -> bool:
        failed = StoreUnavailable(f"{type(self.cause).__name__}: {self.cause}")
        raise failed from self.cause

    async def close(self) -> None:
        return None


def _with_store(monkeypatch: pytest.MonkeyPatch, cause: Exception) -> None:
    monkeypatch.setattr(redis_checks, "build_store", lambda settings: _Store(cause))


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("redis://:WrongSecret@cache:6379/0", "Redis refused its user and password"),
        ("redis://cache:6379/0", "Redis refused to answer without a password, which the URL"),
    ],
)
async def test_a_refused_login_is_the_first_thing_said(
    url: str, said: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _with_store(monkeypatch, AuthenticationError("invalid username-password pair"))
    caplog.set_level(logging.INFO)
    with pytest.raises(SettingsError, match=f"^MOMENTS_REDIS_URL: {said}") as refused:
        await warn_about_redis_setup(Settings(redis_url=url), within_s=1)
    assert not caplog.records  # no warning about the version, persistence or eviction
    assert "WrongSecret" not in str(refused.value)


async def test_a_redis_not_up_yet_is_still_only_warned_of(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _with_store(monkeypatch, RedisConnectionError("Error 111 connecting to cache:6379."))
    setup = await warn_about_redis_setup(Settings(), within_s=1)
    assert setup == redis_checks.RedisSetup(None, None, None)
    assert "Moments needs Redis 7 or later" in caplog.text


async def test_a_redis_that_never_answers_delays_the_start_by_within_s_not_twice() -> None:
    """The login check's PING waited ``within_s``, then the version, eviction and
    persistence checks waited ``within_s`` again: a start twice as late (10 s, not 5)."""
    import socket
    import time

    with socket.socket() as silent:  # takes connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        started = time.monotonic()
        setup = await warn_about_redis_setup(Settings(redis_url=url), within_s=1.0)
        took = time.monotonic() - started
    assert setup == redis_checks.RedisSetup(None, None, None)
    assert took < 1.6, took
