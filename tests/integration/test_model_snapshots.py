"""Model snapshots on real Redis: versions, and two learners publishing at once."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis

from feature_store import FeatureStore, StoreConfig
from feature_store.models import SnapshotDamaged
from streams.services import Services

pytestmark = pytest.mark.integration


async def test_a_publish_on_a_stale_version_is_refused(kafka_redis: Services) -> None:
    prefix = f"ms{uuid.uuid4().hex[:8]}"
    store = FeatureStore.from_url(kafka_redis.redis_url, StoreConfig(prefix.encode(), prefix))
    models = store.models
    try:
        assert await models.load("bandit") is None
        assert await models.version("bandit") == 0
        assert await models.publish("bandit", 0, '{"n": 1}') == 1
        assert await models.publish("bandit", 0, '{"n": "stale"}') is None
        assert await models.publish("bandit", 1, '{"n": 2}') == 2
        assert await models.load("bandit") == (2, '{"n": 2}')
        assert await models.version("bandit") == 2
        assert await models.version("risk") == 0  # one series per model name
        racing = await asyncio.gather(
            *(models.publish("risk", 0, f'{{"learner": {i}}}') for i in range(5))
        )
        assert sorted(racing, key=lambda v: v or 0) == [None, None, None, None, 1]
        winner = racing.index(1)
        assert await models.load("risk") == (1, f'{{"learner": {winner}}}')
    finally:
        await store.close()


async def test_a_snapshot_changed_in_storage_is_refused_not_scored_with(
    kafka_redis: Services,
) -> None:
    """One character of a 3 MB offer-model snapshot changed (damaged in storage, or
    edited by hand) was taken up as it was, and moved an offer's estimate silently."""
    prefix = f"ms{uuid.uuid4().hex[:8]}"
    store = FeatureStore.from_url(kafka_redis.redis_url, StoreConfig(prefix.encode(), prefix))
    client = aioredis.Redis.from_url(kafka_redis.redis_url)
    models, key = store.models, f"{prefix}:model:{{bandit}}"
    try:
        assert await models.publish("bandit", 0, '{"theta": [0.25, 0.5]}') == 1
        assert await models.load("bandit") == (1, '{"theta": [0.25, 0.5]}')
        await client.hset(key, "payload", '{"theta": [0.75, 0.5]}')
        with pytest.raises(SnapshotDamaged):
            await models.load("bandit")
        # a publisher older than digests writes a new version and payload only: its
        # snapshot is taken, the digest of the one before it not held against it
        await client.hset(key, mapping={"version": 2, "payload": '{"theta": [1.0]}'})
        assert await models.load("bandit") == (2, '{"theta": [1.0]}')
        assert await models.publish("bandit", 2, '{"theta": [2.0]}') == 3
        assert await models.load("bandit") == (3, '{"theta": [2.0]}')
        await models.discard("bandit")  # (a rebuild drops a damaged one: a new series)
        assert await models.load("bandit") is None and await models.version("bandit") == 0
    finally:
        await client.aclose()
        await store.close()
