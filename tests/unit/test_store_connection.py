"""Which Redis errors the feature store reports as "Redis is unavailable"."""

from __future__ import annotations

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from feature_store import StoreUnavailable
from feature_store.connection import raise_failed


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
