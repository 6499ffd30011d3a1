"""A zero-time withdrawal whose first delivery was dead-lettered, re-driven days later:
it counts from no later than when it was first dead-lettered. The worker stamped it with
the re-driven record's Kafka time (the re-drive), so it outranked a grant the customer
made in between."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agents.letters import SourceRecord
from feature_store import FeatureStore, StoreConfig
from feature_store.facts import ts_ms
from schemas import Consent, encode_touchpoint
from streams.services import LocalRedis
from tests.unit.test_touchpoint_handler import NOW, RecordingStore, handler

ZERO = datetime(1, 1, 1, tzinfo=UTC)
pytestmark = pytest.mark.integration


async def test_redriven_withdrawal_keeps_its_first_receipt(private_redis: LocalRedis) -> None:
    first_sent = NOW - timedelta(days=3)
    withdrawal = Consent(
        event_id="zw", customer_id="cust-1", ts=ZERO, channel="email", granted=False
    )
    redriven = SourceRecord(
        "touchpoints",
        0,
        9,
        b"cust-1",
        encode_touchpoint(withdrawal),
        redriven_from=b"touchpoints-dlq:0:7",
        first_lettered=str(ts_ms(first_sent)).encode(),
        produced_ms=ts_ms(NOW),
        taken_ms=ts_ms(NOW),
    )
    rec = RecordingStore()
    await handler(rec).handle([redriven])
    (facts,) = rec.facts
    (fact,) = facts
    # the customer granted again a day ago, after the withdrawal first reached Moments
    grant = Consent(
        event_id="g",
        customer_id="cust-1",
        ts=NOW - timedelta(days=1),
        channel="email",
        granted=True,
    )
    store = FeatureStore.from_url(private_redis.url, StoreConfig(secret=b"s", prefix="d"))
    try:
        await store.apply([grant])
        await store.apply_facts([fact])
        profile = (await store.export("cust-1")).profile
        assert profile["consent:email"] == "1", (profile, fact.ts_ms, ts_ms(first_sent))
    finally:
        await store.close()
