"""Model snapshots on real Redis: versions, and two learners publishing at once."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from feature_store import FeatureStore, StoreConfig
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
