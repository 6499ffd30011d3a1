"""One customer's newest recent touchpoint in Redis is in a form this version cannot read
(written by an older or newer Moments, or a tool: no event id, a time that is no
millisecond count). The worker reads each customer's newest touchpoint before a batch
in the batch's own round trip (``newest_before``, so that a burst does not hide it).
That read failed the batch's apply three times and then applied its events one by one,
without it, so every other customer of the batch lost the touchpoint before their burst
(a lapse labelled for an active customer, no win-back for one back after months). Now
the foreign entry reads as unknown for its own customer alone (whose features cannot be
read: their touchpoints are dead-lettered), and the batch is applied once. Real Redis.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from agents.batch_result import BatchMemory
from agents.catalogue_holder import CatalogueHolder
from agents.contact_policy import ContactPolicy
from agents.control_group import ControlGroup
from agents.letters import SourceRecord
from agents.offer_rules import RuleBasedOfferPolicy
from agents.touchpoint_handler import TouchpointHandler
from feature_store import FeatureStore, StoreConfig
from schemas import Offer, OfferCatalogue, WebClick, encode_touchpoint
from streams.services import Services
from tests.unit.logged import said_by

pytestmark = pytest.mark.integration

CATALOGUE = OfferCatalogue(
    version="t", offers=[Offer(offer_id="tips", title="T", channels=["web"])],
    default_offers=["tips"],
)  # fmt: skip
POLICY = RuleBasedOfferPolicy(CatalogueHolder(CATALOGUE), ContactPolicy(ControlGroup("t", 0.0)))


def _click(event_id: str, customer: str, ts: datetime) -> WebClick:
    return WebClick(event_id=event_id, customer_id=customer, ts=ts, page="/offers")


def _records(events: list[WebClick]) -> list[SourceRecord]:
    return [
        SourceRecord("touchpoints", 0, n, e.customer_id.encode(), encode_touchpoint(e))
        for n, e in enumerate(events)
    ]


# no event id; its fields in another order; a time past any date
FOREIGN = ["1796577928506|web_click", "web_click|e-1|1796577928506", "99999999999999999999|x|y"]


def _now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


@pytest.mark.parametrize("foreign", FOREIGN)
async def test_one_customers_foreign_recent_entry_leaves_the_others_history_whole(
    kafka_redis: Services, caplog: pytest.LogCaptureFixture, foreign: str
) -> None:
    prefix = f"fr{uuid.uuid4().hex[:8]}"
    store = FeatureStore.from_url(kafka_redis.redis_url, StoreConfig(prefix.encode(), prefix))
    admin = aioredis.Redis.from_url(kafka_redis.redis_url)
    try:
        handler = TouchpointHandler(store, POLICY)
        now = datetime.now(UTC)
        earlier = [_click("before-odd", "odd", now - timedelta(days=2)),
                   _click("before-busy", "busy", now - timedelta(days=2))]  # fmt: skip
        assert (await handler.handle(_records(earlier))).dead_letters == []
        recent = store._keys.for_customer("odd").recent
        await admin.zadd(recent, {foreign: _now_ms() + 60_000})  # their newest
        burst = [_click(f"burst-{n}", "busy", now - timedelta(seconds=30 - n)) for n in range(25)]
        batch = _records([_click("odd-now", "odd", now - timedelta(seconds=31)), *burst])
        memory = BatchMemory()
        result = await handler.handle(batch, memory)
        before = memory.newest_before.get("busy")
        assert before is not None and before.event_id == "before-busy"
        assert "odd" not in memory.newest_before or memory.newest_before["odd"] is None
        warned = [r.getMessage() for r in said_by(caplog, "agents.touchpoint_handler")]
        assert not [w for w in warned if "feature update failed" in w]
        assert result.results == [("web_click", "failed")] + [("web_click", "ok")] * 25
        assert [(f.record.offset, f.error.split(":")[0]) for f in result.dead_letters] == [
            (0, "decision read failed")
        ]
        assert {d.customer_id for d in result.decisions} == {"busy"}
    finally:
        await admin.aclose()
        await store.close()
