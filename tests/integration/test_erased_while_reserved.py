"""A customer erased while the worker records its batch's decisions is named in nothing
the batch sends, their alerts without a decision included (real Redis).

The store refuses the decision of an erased customer where it records it, which leaves
out all about them; a customer with only an alert in the batch (a bad mention) was
checked before the recording's round trips only, and their alert went out up to 69 ms
after their erasure record.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agents.letters import SourceRecord
from agents.touchpoint_handler import TouchpointHandler
from feature_store import FeatureStore, StoreConfig
from streams.services import Services
from tests.integration.test_api_support import event
from tests.integration.test_withdrawal_before_resend import POLICY

pytestmark = pytest.mark.integration


def record(offset: int, body: dict[str, Any]) -> SourceRecord:
    key = body["customer_id"].encode()
    return SourceRecord("touchpoints", 0, offset, key, json.dumps(body).encode())


@pytest.fixture
async def store(kafka_redis: Services) -> AsyncIterator[FeatureStore]:
    config = StoreConfig(secret=b"reserved-secret", prefix=f"er{uuid.uuid4().hex[:8]}")
    store = FeatureStore.from_url(kafka_redis.redis_url, config)
    yield store
    await store.close()


async def test_an_alert_is_not_sent_for_a_customer_erased_while_decisions_are_recorded(
    store: FeatureStore,
) -> None:
    worker = TouchpointHandler(store, POLICY)
    batch = [
        record(0, event("email", "er-decided", "e1", minutes_ago=1)),
        record(1, event("social_mention", "er-alerted", "s1", minutes_ago=1, sentiment=-0.9,
                        reach=5000)),
    ]  # fmt: skip
    result = await worker.handle(batch, Counter())
    assert [d.customer_id for d in result.decisions] == ["er-decided"]
    assert [a.customer_id for a in result.interventions] == ["er-alerted"]
    await worker.without_erased(result)  # neither erased yet
    await store.erase("er-alerted")  # while the decisions are being recorded
    await worker.reserve(result)
    assert result.interventions == []
    assert [d.customer_id for d in result.decisions] == ["er-decided"]
