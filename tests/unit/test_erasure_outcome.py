"""An erasure Redis could not be reached for did not run: it is not taken for one whose
outcome is unknown (no erasure record is written for it)."""

from __future__ import annotations

import pytest

from feature_store import ErasureUnknown, FeatureStore, StoreConfig, StoreUnavailable


async def test_an_erasure_redis_refused_is_unavailable_not_unknown() -> None:
    store = FeatureStore.from_url("redis://127.0.0.1:1", StoreConfig(secret=b"s"))  # no one
    try:
        with pytest.raises(StoreUnavailable) as failed:
            await store.erase("c1")
        assert not isinstance(failed.value, ErasureUnknown)
    finally:
        await store.close()
