"""``moments rebuild`` keeps what the live worker kept of an erased customer's
withdrawals: those it applied after the erasure ("stop emailing me" sent just before
"forget me", reached by a worker behind, or sent after it) join the names the erasure
record carries, as live; one the erasure weighed, taken back by a grant before it, does
not."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis

from feature_store import ApplyStatus
from feature_store.facts import ts_ms
from schemas import CustomerErasure, decode_touchpoint, encode_erasure
from streams import rebuild as rebuild_module
from streams.app import build_store
from streams.rebuild import rebuild
from streams.services import LocalRedis
from streams.settings import Settings
from tests.integration.conftest import Pipeline
from tests.integration.test_api_support import event, iso, keys_tagged
from tests.integration.test_rebuild_records import rebuilt, write

pytestmark = pytest.mark.integration


def sent(events: list[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
    return [(e["customer_id"].encode(), json.dumps(e).encode()) for e in events]


def sent_when_dated(events: list[dict[str, Any]]) -> list[int]:
    return [ts_ms(datetime.fromisoformat(e["ts"])) for e in events]


async def test_rebuild_keeps_the_withdrawals_applied_after_the_erasure(
    pipeline: Pipeline, private_redis: LocalRedis
) -> None:
    """Live: a purchase, a text withdrawal a grant took back, both before the erasure;
    then "stop emailing me" (sent an hour before "forget me", applied after it by a worker
    behind) and an unsubscribe sent after it. The erasure kept nothing; the worker added
    the two email withdrawals. The rebuild held them out with the customer's other records,
    and the erased id would have been offered email again."""
    customer = f"{pipeline.prefix}stop-then-forget"
    before = [
        event("purchase", customer, "sf-1", minutes_ago=300),
        event("consent", customer, "sf-2", minutes_ago=240, channel="sms", granted=False),
        event("consent", customer, "sf-3", minutes_ago=180, channel="sms", granted=True),
    ]
    behind = [event("consent", customer, "sf-4", minutes_ago=60, channel="email", granted=False)]
    live = pipeline.store()
    try:
        applied = await live.apply([decode_touchpoint(json.dumps(e)) for e in before])
        assert applied == [ApplyStatus.APPLIED] * 3
        receipt = await live.erase(customer)
        assert receipt.withdrawals_kept == [] and receipt.erased_at_ms is not None
        after = [event("email", customer, "sf-5", minutes_ago=0, action="unsubscribed")]
        late = await live.apply([decode_touchpoint(json.dumps(e)) for e in behind + after])
        assert late == [ApplyStatus.ERASED] * 2
        kept_live = await live.withdrawals_kept(customer)
        assert kept_live == ["consent:email", "subscribed:email"]
        tag = live.pseudonym(customer)
    finally:
        await live.close()
    # the topics as the live deployment wrote them: each touchpoint sent when dated
    await write(pipeline, "touchpoints", sent(before + behind),
                sent_when_dated(before + behind))  # fmt: skip
    erased_at = datetime.fromtimestamp(receipt.erased_at_ms / 1000, UTC)
    record = CustomerErasure(customer_id=customer, subject=receipt.subject, ts=erased_at,
                             keys_removed=receipt.keys_removed,
                             withdrawals=tuple(receipt.withdrawals_kept))  # fmt: skip
    await write(pipeline, "customer-erasures", [(customer.encode(), encode_erasure(record))])
    await write(pipeline, "touchpoints", sent(after))

    report, store = await rebuilt(pipeline, private_redis)
    admin = aioredis.Redis.from_url(private_redis.url, decode_responses=True)
    try:
        assert await store.withdrawals_kept(customer) == kept_live
        # nothing else of the customer came back: the same keys as live, no profile
        left = await keys_tagged(private_redis.url, tag)
        assert left == await keys_tagged(pipeline.services.redis_url, tag)
        assert (report.erasures, report.applied) == (1, 0)
        tombstone, _, kept = left
        assert abs(await admin.pttl(kept) - await admin.pttl(tombstone)) < 5_000
    finally:
        await admin.aclose()
        await store.close()


async def test_rebuild_writes_nothing_of_a_customer_whose_block_ran_out_meanwhile(
    pipeline: Pipeline, private_redis: LocalRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long replay outlasts an erasure's block: the withdrawal held out is then kept
    for the erased only, and the store has none to keep it beside, so it writes nothing
    (as live, where nothing of the customer is left once the block ends), not a profile
    or an opt-out without expiry."""
    customer = f"{pipeline.prefix}lapses-meanwhile"
    settings = Settings.from_env({**pipeline.env(0), "MOMENTS_TOMBSTONE_DAYS": "8"})
    erased_at = datetime.now(UTC) - timedelta(days=8) + timedelta(seconds=6)  # ends in 6 s
    withdrew = {
        "type": "consent",
        "event_id": "lm-1",
        "customer_id": customer,
        "ts": iso(erased_at - timedelta(hours=1)),
        "channel": "email",
        "granted": False,
    }
    await write(pipeline, "touchpoints", [(customer.encode(), json.dumps(withdrew).encode())],
                [ts_ms(erased_at) + 60_000])  # fmt: skip
    store = build_store(settings, private_redis.url)  # as `moments rebuild --redis-url` does
    tag = store.pseudonym(customer)
    record = CustomerErasure(customer_id=customer, subject=tag, ts=erased_at, keys_removed=3)
    await write(pipeline, "customer-erasures", [(customer.encode(), encode_erasure(record))])
    replay_touchpoints = rebuild_module._Replay.replay_touchpoints

    async def slow_replay(self: Any) -> None:  # the block runs out meanwhile
        await replay_touchpoints(self)
        assert await keys_tagged(private_redis.url, tag)  # erased again: the tombstone
        await asyncio.sleep(8)

    monkeypatch.setattr(rebuild_module._Replay, "replay_touchpoints", slow_replay)
    try:
        await rebuild(settings, store)
        assert await keys_tagged(private_redis.url, tag) == []
    finally:
        await store.close()
