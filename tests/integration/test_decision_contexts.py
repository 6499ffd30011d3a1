"""Decision contexts in Redis: every one kept for learning is found again by erasure,
however many decisions the customer had, the index that names them does not grow
past the contexts' lifetime, and that lifetime counts from the decision; a context is
kept without its customer's id, and every reader gets the id back."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from feature_store import ApplyStatus, FeatureStore, StoreConfig
from feature_store.records import DecisionRecord
from schemas import (
    Intervention,
    NextBestOffer,
    OfferScore,
    decode_touchpoint,
    encode_decision,
)
from streams.services import Services
from tests.integration.test_api_support import keys_tagged, left_by_erasure

pytestmark = pytest.mark.integration


def decided(customer: str, n: int, at_ms: int) -> DecisionRecord:
    context = json.dumps({"decision_id": f"d{n}", "customer_id": customer}).encode()
    return DecisionRecord(customer, f"d{n}", at_ms, context, trigger_event_id=f"e{n}")


async def test_erasure_finds_every_kept_context_not_only_the_recent_ones(
    kafka_redis: Services,
) -> None:
    prefix = f"dc{uuid.uuid4().hex[:8]}"
    config = StoreConfig(prefix.encode(), prefix, decisions_kept=3)
    store = FeatureStore.from_url(kafka_redis.redis_url, config)
    now_ms = int(time.time() * 1000)
    try:
        await store.decisions.record([decided("c1", n, now_ms + n) for n in range(8)])
        await store.decisions.record([decided("c2", 0, now_ms)])  # a bystander
        tag = store.pseudonym("c1")
        assert len(await store.decisions.recent("c1")) == 3  # the profile lists all it keeps
        contexts = [k for k in await keys_tagged(kafka_redis.redis_url, tag) if ":ctx:" in k]
        assert len(contexts) == 8  # all kept: an outcome of any of them still teaches
        receipt = await store.erase("c1")
        assert await keys_tagged(kafka_redis.redis_url, tag) == left_by_erasure(
            f"{prefix}:{{{tag}}}:erased"
        )
        assert "decision_contexts" in receipt.kinds
        assert receipt.keys_removed == 8 + len(receipt.kinds) - 1
        bystander = store.pseudonym("c2")
        assert len(await keys_tagged(kafka_redis.redis_url, bystander)) == 4  # untouched
    finally:
        await store.close()


@pytest.mark.parametrize("corrupt", ["tombstone", "erasure"])
async def test_an_erasure_whose_tombstone_or_record_has_another_type_still_blocks(
    kafka_redis: Services, corrupt: str
) -> None:
    """The script read them after its deletes: WRONGTYPE failed every attempt with the
    data gone and no tombstone written, so replays built the profile again."""
    prefix = f"dc{uuid.uuid4().hex[:8]}"
    store = FeatureStore.from_url(kafka_redis.redis_url, StoreConfig(prefix.encode(), prefix))
    now_ms = int(time.time() * 1000)
    try:
        await store.decisions.record([decided("c1", 0, now_ms)])
        key = getattr(store._keys.for_customer("c1"), corrupt)
        admin = aioredis.Redis.from_url(kafka_redis.redis_url)
        try:
            await admin.rpush(key, "not what it should be")
        finally:
            await admin.aclose()
        receipt = await store.erase("c1")
        assert "decision_contexts" in receipt.kinds
        assert await store.erased(["c1"]) == [True]
        tag = store.pseudonym("c1")
        assert await keys_tagged(kafka_redis.redis_url, tag) == left_by_erasure(
            f"{prefix}:{{{tag}}}:erased"
        )
        assert (await store.erase("c1")).kinds == receipt.kinds  # a retry tells the same
    finally:
        await store.close()


async def test_the_context_index_forgets_decisions_whose_contexts_expired(
    kafka_redis: Services,
) -> None:
    prefix = f"dc{uuid.uuid4().hex[:8]}"
    now = [1_800_000_000.0]
    config = StoreConfig(prefix.encode(), prefix, context_ttl_s=60)
    store = FeatureStore.from_url(kafka_redis.redis_url, config, clock=lambda: now[0])
    admin = aioredis.Redis.from_url(kafka_redis.redis_url, decode_responses=True)
    try:
        await store.decisions.record([decided("c1", n, 1_800_000_000_000) for n in range(5)])
        (index,) = [k for k in await keys_tagged(kafka_redis.redis_url, store.pseudonym("c1"))
                    if k.endswith(":ctxidx")]  # fmt: skip
        assert await admin.zcard(index) == 5
        assert 0 < await admin.ttl(index) <= 60 + 3600  # gone with the last context, and then some
        now[0] += 60 + 3600  # still within the margin for clocks that run ahead
        await store.decisions.record([decided("c1", 5, int(now[0] * 1000))])
        assert await admin.zcard(index) == 6
        now[0] += 1  # past it: the first five contexts expired long ago
        await store.decisions.record([decided("c1", 6, int(now[0] * 1000))])
        assert sorted(await admin.zrange(index, 0, -1)) == ["d5", "d6"]
    finally:
        await admin.aclose()
        await store.close()


async def test_a_context_is_kept_for_what_is_left_of_its_lifetime(kafka_redis: Services) -> None:
    """A decision recorded long after it was taken (``moments rebuild`` replays them from
    the topics) keeps its context only until a week after the decision, if at all."""
    prefix = f"dc{uuid.uuid4().hex[:8]}"
    config = StoreConfig(prefix.encode(), prefix, context_ttl_s=7 * 86400)
    store = FeatureStore.from_url(kafka_redis.redis_url, config)
    admin = aioredis.Redis.from_url(kafka_redis.redis_url, decode_responses=True)
    now_ms = int(time.time() * 1000)
    day_ms = 86_400_000
    try:
        await store.decisions.record([decided("c1", 0, now_ms - 3 * day_ms),
                                      decided("c1", 1, now_ms - 8 * day_ms),
                                      decided("c1", 2, now_ms)])  # fmt: skip
        kept = await store.decisions.contexts([("c1", "d0"), ("c1", "d1"), ("c1", "d2")])
        assert [c is not None for c in kept] == [True, False, True]
        contexts = sorted(k for k in await keys_tagged(kafka_redis.redis_url, store.pseudonym("c1"))
                          if ":ctx:" in k)  # fmt: skip
        ttls = [await admin.ttl(k) for k in contexts]  # d0, then d2
        assert 4 * 86400 - 60 <= ttls[0] <= 4 * 86400  # three of its seven days gone
        assert 7 * 86400 - 60 <= ttls[1] <= 7 * 86400
        # all three are the customer's recent decisions, and their touchpoints decided
        assert (await store.raw("c1"))["seen"] == ["d:t:e0", "d:t:e1", "d:t:e2"]
    finally:
        await admin.aclose()
        await store.close()


async def test_the_recent_decisions_are_all_the_recent_list_keeps(kafka_redis: Services) -> None:
    """The profile lists the 20 newest decisions, as the README says (it listed 10)."""
    prefix = f"dc{uuid.uuid4().hex[:8]}"
    store = FeatureStore.from_url(kafka_redis.redis_url, StoreConfig(prefix.encode(), prefix))
    now_ms = int(time.time() * 1000)
    try:
        await store.decisions.record([decided("c1", n, now_ms + n) for n in range(25)])
        recent = [json.loads(c)["decision_id"] for c in await store.decisions.recent("c1")]
        assert recent == [f"d{n}" for n in range(24, 4, -1)]
    finally:
        await store.close()


async def test_a_decision_that_offered_nothing_keeps_its_context_a_day(
    kafka_redis: Services,
) -> None:
    """No outcome can teach from it (it showed no offer), and held-out or suppressed
    decisions are most of them: a week of their contexts was most of Redis."""
    prefix = f"dc{uuid.uuid4().hex[:8]}"
    store = FeatureStore.from_url(kafka_redis.redis_url, StoreConfig(prefix.encode(), prefix))
    admin = aioredis.Redis.from_url(kafka_redis.redis_url, decode_responses=True)
    now_ms = int(time.time() * 1000)
    day_ms = 86_400_000
    try:
        offered = decided("c1", 0, now_ms - 3 * day_ms)
        nothing, old_nothing = decided("c1", 1, now_ms), decided("c1", 2, now_ms - 2 * day_ms)
        await store.decisions.record([
            offered, replace(nothing, offered=False), replace(old_nothing, offered=False),
        ])  # fmt: skip
        keys = store._keys.for_customer("c1")
        assert 4 * 86400 - 60 <= await admin.ttl(keys.context("d0")) <= 4 * 86400
        assert 86400 - 60 <= await admin.ttl(keys.context("d1")) <= 86400
        assert not await admin.exists(keys.context("d2"))  # its day is over
        # the index still names the offered one, three days old: erasure finds it
        assert sorted(await admin.zrange(keys.decision_index, 0, -1)) == ["d0", "d1"]
        recent = [json.loads(c)["decision_id"] for c in await store.decisions.recent("c1")]
        assert recent == ["d1", "d0"]  # the profile shows both while they are kept
    finally:
        await admin.aclose()
        await store.close()


async def test_a_decision_recorded_before_it_was_sent_marks_its_trigger_recorded(
    kafka_redis: Services,
) -> None:
    """A worker records its decision before sending it (the trigger marked recorded: a
    replay sends that decision again) and once more after (marked decided: a replay
    skips it); a record before sending that comes after does not take the mark back."""
    prefix = f"dc{uuid.uuid4().hex[:8]}"
    store = FeatureStore.from_url(kafka_redis.redis_url, StoreConfig(prefix.encode(), prefix))
    try:
        click = decode_touchpoint(json.dumps({
            "type": "web_click", "event_id": "e1", "customer_id": "c1",
            "ts": datetime.now(UTC).isoformat(), "page": "/",
        }))  # fmt: skip
        assert await store.apply([click]) == [ApplyStatus.APPLIED]
        assert await store.apply([click]) == [ApplyStatus.DUPLICATE]  # decision never made
        record = decided("c1", 1, int(time.time() * 1000))
        assert await store.decisions.record([replace(record, sent=False)]) == [True]
        assert await store.apply([click]) == [ApplyStatus.DUPLICATE_RECORDED]
        (kept,) = await store.decisions.contexts([("c1", "d1")])
        assert kept is not None and json.loads(kept) == json.loads(record.context)
        assert await store.decisions.record([record]) == [True]  # sent
        assert await store.apply([click]) == [ApplyStatus.DUPLICATE_DECIDED]
        await store.decisions.record([replace(record, sent=False)])
        assert await store.apply([click]) == [ApplyStatus.DUPLICATE_DECIDED]
        seen = [m for m in await raw_seen(kafka_redis.redis_url, prefix) if m.startswith("u:")]
        assert seen == []  # the recorded mark went with the decided one
    finally:
        await store.close()


async def raw_seen(url: str, prefix: str) -> list[str]:
    client = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        found = [k async for k in client.scan_iter(match=f"{prefix}:*:seen")]
        return [m for key in found for m in await client.zrange(key, 0, -1)]
    finally:
        await client.aclose()


async def test_contexts_are_kept_without_the_customer_id_and_read_back_with_it(
    kafka_redis: Services,
) -> None:
    """Redis keeps no context naming its customer (their keys are named by a keyed hash:
    a value with the id would map the hash back); the learner's contexts, the profile's
    recent decisions and the export each get it back, also from a context an older
    Moments stored with the id, and outcomes are still claimed against them."""
    prefix = f"dc{uuid.uuid4().hex[:8]}"
    store = FeatureStore.from_url(kafka_redis.redis_url, StoreConfig(prefix.encode(), prefix))
    customer = f'cust-{uuid.uuid4().hex[:8]} "é, \\{{x}}'
    now = datetime.now(UTC)
    offer = NextBestOffer(decision_id="d-new", customer_id=customer, ts=now, channel="web",
                          trigger_event_id="e1", offers=[OfferScore(offer_id="o1", score=0.5,
                          propensity=0.3)])  # fmt: skip
    alert = Intervention(intervention_id="i-new", customer_id=customer, ts=now, kind="churn",
                         priority=2, trigger_event_id="e2", reasons=[],
                         suggested_action="call")  # fmt: skip
    old = NextBestOffer(decision_id="d-old", customer_id=customer, ts=now, channel="email",
                        trigger_event_id="e3", offers=[OfferScore(offer_id="o2", score=0.4,
                        propensity=0.2)])  # fmt: skip
    at_ms = int(now.timestamp() * 1000)
    client = aioredis.Redis.from_url(kafka_redis.redis_url)
    try:
        records = [DecisionRecord(customer, d.decision_id, at_ms + n, encode_decision(d))
                   for n, d in ((0, old), (1, offer))]  # fmt: skip
        records.append(DecisionRecord(customer, "i-new", at_ms + 2, encode_decision(alert)))
        assert await store.decisions.record(records) == [True, True, True]
        base = f"{prefix}:{{{store.pseudonym(customer)}}}:ctx:"
        # as an older Moments stored it: with the id
        assert await client.set(base + "d-old", encode_decision(old), keepttl=True, xx=True)
        for decision_id in ("d-new", "i-new"):
            raw = await client.get(base + decision_id)
            assert raw is not None and b"customer_id" not in raw and b"cust-" not in raw, raw

        full = [encode_decision(d).decode() for d in (alert, offer, old)]  # newest first
        asked = [(customer, "i-new"), (customer, "d-new"), (customer, "d-old")]
        assert await store.decisions.contexts(asked) == full
        assert await store.decisions.contexts(asked, faults={}) == full
        assert await store.decisions.recent(customer) == full
        assert (await store.export(customer)).decisions == full
        claims = [(customer, "d-new", "d-new:o1:accepted", "r1"),
                  (customer, "d-old", "d-old:o2:accepted", "r2"),
                  (customer, "i-new", "i-new:o1:accepted", "r3")]  # fmt: skip
        assert await store.decisions.claim_outcomes(claims) == ["learn", "learn", "not_an_offer"]
    finally:
        await client.aclose()
        await store.close()
