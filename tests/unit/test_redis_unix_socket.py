"""A feature store on a Redis unix socket: one that cannot be reached is an outage (to
wait out), as for a TCP URL, not an error that dead-letters every event."""

from __future__ import annotations

from pathlib import Path

import pytest

from feature_store import FeatureStore, StoreConfig, StoreUnavailable


async def test_a_unix_socket_redis_that_is_not_there_is_an_outage(tmp_path: Path) -> None:
    store = FeatureStore.from_url(
        f"unix://{tmp_path}/redis.sock", StoreConfig(secret=b"unix-socket-test")
    )
    try:
        with pytest.raises(StoreUnavailable):
            await store.models.version("nbo")
    finally:
        await store.close()
