"""A consent history imported at once (a CRM's backfill, sent now): a withdrawal truly
made 2 years ago, then a grant made 300 days ago. The grant is the customer's latest
word and wins: only a placeholder time (the zero time, the epoch) is stamped when the
withdrawal was received; the withdrawal dated more than the store's TTL before it was
sent was stamped when sent, now, and outranked it (the customer stayed suppressed)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agents.letters import SourceRecord
from feature_store import FeatureStore, StoreConfig
from feature_store.facts import ts_ms
from schemas import Consent, encode_touchpoint
from streams.services import LocalRedis
from tests.unit.test_touchpoint_handler import NOW, RecordingStore, handler

pytestmark = pytest.mark.integration


def rec(event: Consent, offset: int) -> SourceRecord:
    return SourceRecord(
        "touchpoints",
        0,
        offset,
        b"cust-1",
        encode_touchpoint(event),
        produced_ms=ts_ms(NOW),
        taken_ms=ts_ms(NOW),
    )


async def test_backfilled_history_keeps_the_latest_grant(private_redis: LocalRedis) -> None:
    withdrew = Consent(
        event_id="h1",
        customer_id="cust-1",
        ts=NOW - timedelta(days=730),
        channel="email",
        granted=False,
    )
    granted = Consent(
        event_id="h2",
        customer_id="cust-1",
        ts=NOW - timedelta(days=300),
        channel="email",
        granted=True,
    )
    recording = RecordingStore()
    await handler(recording).handle([rec(withdrew, 0), rec(granted, 1)])
    extra = [f for fs in recording.facts for f in fs]
    store = FeatureStore.from_url(private_redis.url, StoreConfig(secret=b"s", prefix="b"))
    try:
        await store.apply([withdrew, granted])
        await store.apply_facts(extra)
        profile = (await store.export("cust-1")).profile
        assert profile.get("consent:email") == "1", (profile, [f.fact_id for f in extra])
    finally:
        await store.close()
