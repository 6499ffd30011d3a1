"""A duplicate id that withdraws, for a profile whose legacy `email:unsubscribed` count is
corrupt: apply.lua's seen-before branch reads it as none (keep_withdrawals), the
reference's _withdrawals_only calls int() on it and raises."""

from __future__ import annotations

import uuid

import pytest

from feature_store import FeatureStore, StoreConfig
from feature_store.facts import touchpoint_fact
from feature_store.reference import CustomerState
from schemas import Consent
from streams.services import Services
from tests.integration.test_feature_store_properties import NOW, NOW_MS

pytestmark = pytest.mark.integration


async def test_seen_before_withdrawal_with_corrupt_count(kafka_redis: Services) -> None:
    store = FeatureStore.from_url(
        kafka_redis.redis_url,
        StoreConfig(b"s", f"d{uuid.uuid4().hex[:8]}"),
        clock=lambda: NOW_MS / 1000,
    )
    ref = CustomerState()
    try:
        grant = touchpoint_fact(
            Consent(event_id="f", customer_id="c", ts=NOW, channel="sms", granted=True)
        )
        again = touchpoint_fact(
            Consent(event_id="f", customer_id="c", ts=NOW, channel="sms", granted=False)
        )
        assert [int(s) for s in await store.apply_facts([grant])] == [ref.apply(grant, NOW_MS)]
        await store._conn.client.hset(
            store._keys.for_customer("c").profile, "email:unsubscribed", "1.5x"
        )
        ref.profile["email:unsubscribed"] = "1.5x"
        got = [int(s) for s in await store.apply_facts([again])]
        assert got == [ref.apply(again, NOW_MS)]
        assert (await store.raw("c"))["profile"] == ref.profile
    finally:
        await store.close()
