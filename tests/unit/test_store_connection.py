"""Which Redis errors the feature store reports as "Redis is unavailable"."""

from __future__ import annotations

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from feature_store import StoreUnavailable
from feature_store.redis_errors import raise_failed


def test_replies_without_errors_pass() -> None:
    raise_failed(["OK", 1, None, {"a": "1"}])


@pytest.mark.parametrize(
    "error", [RedisConnectionError("gone"), RedisTimeoutError("slow"), OSError("reset")]
)
def test_a_transient_error_means_redis_is_unavailable(error: Exception) -> None:
    with pytest.raises(StoreUnavailable, match=str(error)):
        raise_failed([1, error])


def test_any_other_error_is_raised_as_it_is() -> None:
    wrong = ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        raise_failed([wrong, RedisConnectionError("gone")])


@pytest.mark.parametrize(
    "error",
    [
        "LOADING Redis is loading the dataset in memory",
        "READONLY You can't write against a read only replica.",
        "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
        "BUSY Redis is busy running a script.",
        "OOM command not allowed when used memory > 'maxmemory'.",
        "TRYAGAIN Multiple keys request during rehashing of slot",
        "CLUSTERDOWN The cluster is down",
        "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist",
    ],
)
def test_a_server_that_cannot_serve_now_is_unavailable_not_a_bad_call(error: str) -> None:
    from redis.exceptions import ResponseError

    from feature_store.records import StoreUnavailable
    from feature_store.redis_errors import raise_failed, transient

    assert transient(ResponseError(error))
    with pytest.raises(StoreUnavailable):
        raise_failed([1, ResponseError(error)])


@pytest.mark.parametrize(
    "error",
    [
        "ERR value is not an integer or out of range",
        "WRONGTYPE Operation against a key holding the wrong kind of value",
        "ERR Error running script: user_script:59: ERR increment or decrement would overflow",
        "BUSYGROUP Consumer Group name already exists",
    ],
)
def test_an_error_of_the_call_itself_stays_an_error(error: str) -> None:
    from redis.exceptions import ReadOnlyError, ResponseError

    from feature_store.redis_errors import raise_failed, transient

    assert not transient(ResponseError(error))
    with pytest.raises(ResponseError):
        raise_failed([ResponseError(error)])
    assert transient(ReadOnlyError("You can't write against a read only replica."))  # redis-py's


WRITES = {"DEL", "HDEL", "HINCRBY", "HINCRBYFLOAT", "HSET", "INCR", "INCRBY", "PERSIST",
          "PEXPIRE", "PEXPIREAT", "SADD", "SET", "SREM", "ZADD", "ZREM", "ZREMRANGEBYRANK",
          "ZREMRANGEBYSCORE", "EXPIRE", "RENAME", "LPUSH", "RPUSH", "LTRIM", "XADD"}  # fmt: skip


def test_every_script_that_writes_more_than_once_is_refused_whole_before_it_writes() -> None:
    """Redis keeps what a script wrote before one of its commands was refused (an ACL
    changed while the processes run): a script applying a touchpoint counted it again at
    each retry. Each script that writes checks first every command it calls."""
    from feature_store.connection import SCRIPTS, _calls, _lua

    guard = _lua("guard").split("--[[COMMANDS]]")[0]
    for name, script in SCRIPTS.items():
        calls = _calls(script)
        if name in ("erase", "view", "before", "permissions"):  # deletes only, or reads
            assert not script.startswith(guard), name
            assert name == "erase" or not WRITES & set(calls), name
            continue
        assert WRITES & set(calls), f"{name} writes nothing: why guard it?"
        assert script.startswith(guard), name  # before any command of its own
        listed = script.removeprefix(guard).split("})", 1)[0]
        assert listed == ", ".join(f"'{c}'" for c in calls), name
