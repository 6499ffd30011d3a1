"""The day's count of one offer's budget is not an integer (``3.0``, as a tool or another
version counting with floats writes it), or the day's counts are a key of another type.
Reading them for a batch's decisions raised: every batch of the day (any customers,
while the catalogue limits an offer) failed three times and was dead-lettered whole.
Now such an offer reads as spent to its limit (not offered until the count is mended or
the day ends) and the batch is decided with the others. Real Redis.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from agents.catalogue_holder import CatalogueHolder
from agents.contact_policy import ContactPolicy
from agents.control_group import ControlGroup
from agents.letters import SourceRecord
from agents.offer_budget import budget_day
from agents.offer_rules import RuleBasedOfferPolicy
from agents.touchpoint_handler import TouchpointHandler
from feature_store import FeatureStore, StoreConfig
from schemas import Offer, OfferCatalogue, WebClick, encode_touchpoint
from streams.services import Services

pytestmark = pytest.mark.integration

VOUCHER = Offer(offer_id="voucher", title="V", channels=["web"], priority=5.0, daily_limit=100)
CALLBACK = Offer(offer_id="callback", title="C", channels=["web"], priority=4.0, daily_limit=100)
TIPS = Offer(offer_id="tips", title="T", channels=["web"])
CATALOGUE = OfferCatalogue(version="b", offers=[VOUCHER, CALLBACK, TIPS], default_offers=["tips"])
POLICY = RuleBasedOfferPolicy(CatalogueHolder(CATALOGUE), ContactPolicy(ControlGroup("t", 0.0)))
CUSTOMERS = ["c-1", "c-2", "c-3"]


def _batch(now: datetime) -> list[SourceRecord]:
    return [
        SourceRecord("touchpoints", 0, n, c.encode(),
                     encode_touchpoint(WebClick(event_id=f"e-{c}", customer_id=c, ts=now,
                                                page="/offers")))
        for n, c in enumerate(CUSTOMERS)
    ]  # fmt: skip


@pytest.mark.parametrize("corrupt", ["count", "key"])
async def test_an_unreadable_budget_count_fails_no_batch(
    kafka_redis: Services, corrupt: str
) -> None:
    prefix = f"bc{uuid.uuid4().hex[:8]}"
    store = FeatureStore.from_url(kafka_redis.redis_url, StoreConfig(prefix.encode(), prefix))
    admin = aioredis.Redis.from_url(kafka_redis.redis_url)
    try:
        handler = TouchpointHandler(store, POLICY)
        now = datetime.now(UTC)
        counts = f"{prefix}:budget:{{{budget_day(now).isoformat()}}}"
        if corrupt == "count":
            await admin.hset(counts, mapping={"voucher": "3.0", "callback": "2"})
        else:
            await admin.set(counts, "not a hash")
        result = await handler.handle(_batch(now))
        await handler.without_erased(result)
        await handler.reserve(result)
        await handler.confirm(result)
        assert result.dead_letters == [] and result.results == [("web_click", "ok")] * 3
        offered = {d.customer_id: [o.offer_id for o in d.offers] for d in result.decisions}
        # the voucher, whose count cannot be read, is not offered; the callback is where
        # its count can be read
        shown = ["callback", "tips"] if corrupt == "count" else ["tips"]
        assert offered == dict.fromkeys(CUSTOMERS, shown)
        if corrupt == "count":
            assert await admin.hgetall(counts) == {b"voucher": b"3.0", b"callback": b"5"}
    finally:
        await admin.aclose()
        await store.close()
