"""``moments rebuild`` keeps what the live worker kept of an erased customer's
withdrawals: those it applied after the erasure ("stop emailing me" sent just before
"forget me", reached by a worker behind, or sent after it) join the names the erasure
record carries, as live; one the erasure weighed, taken back by a grant before it, does
not, where the topic tells it was appended before the erasure (LogAppendTime). One whose
record its producer stamped with an earlier time is kept, as live."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from feature_store import ApplyStatus
from feature_store.facts import ts_ms
from schemas import CustomerErasure, decode_touchpoint, encode_erasure
from streams.app import build_store
from streams.rebuild import rebuild
from streams.rebuild_replay import Replay
from streams.services import LocalRedis
from streams.settings import Settings
from tests.integration.conftest import Pipeline
from tests.integration.test_api_support import DEV_AUTH, call, event, iso, keys_tagged
from tests.integration.test_rebuild_records import rebuilt, write
from tests.integration.test_service_restarts import all_handled

pytestmark = pytest.mark.integration


def sent(events: list[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
    return [(e["customer_id"].encode(), json.dumps(e).encode()) for e in events]


def sent_when_dated(events: list[dict[str, Any]]) -> list[int]:
    return [ts_ms(datetime.fromisoformat(e["ts"])) for e in events]


async def touchpoints_stamped_by_the_broker(pipeline: Pipeline) -> None:
    """Make the deployment's ``touchpoints`` a topic whose records bear the time the
    broker appended them (``message.timestamp.type=LogAppendTime``)."""
    settings = Settings.from_env(pipeline.env(0))
    admin = AIOKafkaAdminClient(bootstrap_servers=pipeline.services.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(
            pipeline.topic("touchpoints"), settings.topic_partitions, settings.topic_replication,
            topic_configs={"message.timestamp.type": "LogAppendTime"})])  # fmt: skip
    finally:
        await admin.close()


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
    # the topics as the live deployment wrote them, stamped by the broker: all but the
    # unsubscribe appended before the erasure (the producer's times say otherwise)
    await touchpoints_stamped_by_the_broker(pipeline)
    await write(
        pipeline, "touchpoints", sent(before + behind), [ts_ms(datetime.now(UTC)) + 3_600_000] * 4
    )
    await asyncio.sleep(0.05)
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
    erased_at = datetime.fromtimestamp(receipt.erased_at_ms / 1000, UTC)
    record = CustomerErasure(customer_id=customer, subject=receipt.subject, ts=erased_at,
                             keys_removed=receipt.keys_removed,
                             withdrawals=tuple(receipt.withdrawals_kept))  # fmt: skip
    await write(pipeline, "customer-erasures", [(customer.encode(), encode_erasure(record))])
    await asyncio.sleep(0.05)
    await write(pipeline, "touchpoints", sent(after), sent_when_dated(before[:1]))

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
    replay_touchpoints = Replay.replay_touchpoints

    async def slow_replay(self: Any) -> None:  # the block runs out meanwhile
        await replay_touchpoints(self)
        assert await keys_tagged(private_redis.url, tag)  # erased again: the tombstone
        await asyncio.sleep(8)

    monkeypatch.setattr(Replay, "replay_touchpoints", slow_replay)
    try:
        await rebuild(settings, store)
        assert await keys_tagged(private_redis.url, tag) == []
    finally:
        await store.close()


async def test_rebuild_keeps_a_late_withdrawal_its_producer_stamped_before_the_erasure(
    pipeline: Pipeline, private_redis: LocalRedis
) -> None:
    """Live: a text grant, then "forget me"; then a withdrawal dated an hour ago, its
    record stamped with that time by its producer (as Kafka Connect or Debezium stamp
    theirs, CreateTime), is applied after the erasure and kept beside the tombstone: the
    erased id is offered no texts. The rebuild took the grant and the withdrawal for both
    sent before the erasure, and the withdrawal for taken back: it kept nothing, and the
    erased id was offered texts again."""
    customer = f"{pipeline.prefix}late-stamped"
    now = datetime.now(UTC)
    pipeline.start_worker()
    api = pipeline.start_api()
    producer = AIOKafkaProducer(bootstrap_servers=pipeline.services.kafka_bootstrap, acks="all")
    await producer.start()

    async def send(touchpoint: dict[str, Any], stamped: datetime | None = None) -> None:
        at = None if stamped is None else ts_ms(stamped)
        await producer.send_and_wait(pipeline.topic("touchpoints"), json.dumps(touchpoint).encode(),
                                     key=customer.encode(), timestamp_ms=at)  # fmt: skip
        await all_handled(pipeline)

    try:
        await send(event("consent", customer, "ls-g", minutes_ago=30, channel="sms", granted=True))
        erased = await call("DELETE", f"{api.url}/v1/customers/{customer}", headers=DEV_AUTH)
        assert erased.status == 200 and erased.json["withdrawals_kept"] == [], erased
        await asyncio.sleep(1)
        await send(event("consent", customer, "ls-w", minutes_ago=60, channel="sms", granted=False),
                   stamped=now - timedelta(hours=1))  # fmt: skip
    finally:
        await producer.stop()
    live = pipeline.store()
    try:
        kept_live = await live.withdrawals_kept(customer)
    finally:
        await live.close()
    assert kept_live == ["consent:sms"]
    texts = f"/v1/customers/{customer}/recommendations?channel=sms"
    assert (await call("GET", api.url + texts, headers=DEV_AUTH)).json["offers"] == []
    pipeline.stop()

    report, store = await rebuilt(pipeline, private_redis)
    try:
        assert report.erasures == 1
        assert await store.withdrawals_kept(customer) == kept_live
    finally:
        await store.close()
    on_rebuilt = pipeline.start_api(redis_url=private_redis.url)
    assert (await call("GET", on_rebuilt.url + texts, headers=DEV_AUTH)).json["offers"] == []
