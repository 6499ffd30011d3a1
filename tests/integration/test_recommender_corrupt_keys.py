"""One customer whose keys Redis cannot serve as they should be (a key of another type,
a field that is not a number, left by a faulty tool or an old bug) fails their own
recommendation alone: the other requests of the batch are decided, stored and published
as usual. Real Redis and Kafka.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from redis.exceptions import ResponseError

from feature_store import FeatureStore, StoreConfig
from feature_store.records import DecisionRecord
from schemas import NextBestOffer
from streams.api.publisher import KeyedPublisher
from streams.api.recommender import Recommender
from streams.services import Services
from tests.integration.conftest import consume_all
from tests.integration.test_recommender import RULES, seed, unique

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(kafka_redis: Services) -> AsyncIterator[FeatureStore]:
    found = FeatureStore.from_url(
        kafka_redis.redis_url, StoreConfig(secret=b"corrupt-keys-secret", prefix=unique("ck"))
    )
    try:
        yield found
    finally:
        await found.close()


@pytest.fixture
async def admin(kafka_redis: Services) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(kafka_redis.redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    "corrupt",
    ["profile", "contacts", "first_seen", "not_utf8", "decisions", "decision_index", "recent"],
)
async def test_a_customer_whose_key_has_another_type_fails_alone(
    store: FeatureStore,
    admin: aioredis.Redis,
    producer: AIOKafkaProducer,
    kafka_redis: Services,
    corrupt: str,
) -> None:
    """The decision read (profile, contacts) or the decision's write (recent decisions,
    context index, the recent touchpoints its contact adds to) meets a string where a
    hash or sorted set should be, or a profile field that is not a number: that customer's
    caller gets an error (the view answers a fallback), and nothing of their decision is
    kept or sent; the others of the batch get their decisions, stored and published."""
    good = (await seed(store, customers=12, touchpoints=300))[:4]
    broken = good.pop()
    keys = store._keys.for_customer(broken)
    if corrupt == "first_seen":  # a field that is not a number
        await admin.hset(keys.profile, "first_seen", "yesterday")
    elif corrupt == "not_utf8":  # the shared connection was dropped: every call failed
        await admin.hset(keys.profile, "timezone", b"\xff\xfe")
    else:
        await admin.set(getattr(keys, corrupt), "not what it should be")
    topic = unique("decisions")
    recommender = Recommender(store, RULES, KeyedPublisher(producer), topic, budget_s=5.0)
    asked = [good[0], broken, good[1], good[2]]
    answers = await asyncio.gather(
        *(recommender.recommend(c, "web", 2) for c in asked), return_exceptions=True
    )
    await recommender.drain()
    await producer.flush()
    if corrupt == "first_seen":
        assert isinstance(answers[1], ValueError)
    elif corrupt == "not_utf8":
        assert isinstance(answers[1], ResponseError) and "not UTF-8" in str(answers[1])
    else:
        assert isinstance(answers[1], ResponseError) and "WRONGTYPE" in str(answers[1])
    decided = [a for a in answers if isinstance(a, NextBestOffer)]
    assert [d.customer_id for d in decided] == good and not any(d.fallback for d in decided)
    records = await consume_all(kafka_redis.kafka_bootstrap, topic, 3, wait_s=30)
    assert sorted(json.loads(r.value)["decision_id"] for r in records) == sorted(
        d.decision_id for d in decided
    )
    for d in decided:
        assert await store.decisions.recent(d.customer_id)
    # nothing of the broken customer's decision is kept: no context (none escaped their
    # index, through which erasure finds contexts), none among their recent decisions
    assert await admin.keys(keys.context("*")) == []
    if corrupt != "decisions":
        assert await store.decisions.recent(broken) == []


@pytest.mark.parametrize("corrupt", ["decisions", "decision_index"])
async def test_a_customer_whose_decision_key_has_another_type_is_still_erased(
    store: FeatureStore, admin: aioredis.Redis, corrupt: str
) -> None:
    """Erasure reads the sorted sets that name the customer's decisions: one holding a
    string names none, and the erasure removes every key all the same."""
    customer = (await seed(store, customers=1, touchpoints=5))[0]
    keys = store._keys.for_customer(customer)
    await admin.set(getattr(keys, corrupt), "not what it should be")
    receipt = await store.erase(customer)
    assert receipt.blocked
    assert (await store.erased([customer])) == [True]
    assert await admin.exists(*keys.all()) == 0
    assert await admin.keys(keys.context("*")) == []


async def test_a_decision_whose_index_key_has_another_type_writes_nothing(
    store: FeatureStore, admin: aioredis.Redis
) -> None:
    """Redis keeps a failing script's writes: the context was stored before the index
    write failed, so erasure, which finds contexts through the index, would miss it. The
    script now checks the keys' types before its first write."""
    keys = store._keys.for_customer("broken")
    await admin.set(keys.decision_index, "not a sorted set")
    record = DecisionRecord("broken", "d1", int(time.time() * 1000), b"{}")
    faults: dict[str, Exception] = {}
    ok = DecisionRecord("fine", "d2", record.ts_ms, b"{}")
    kept = await store.decisions.record([record, ok], faults=faults)
    assert kept == [False, True] and list(faults) == ["broken"]
    assert await admin.exists(keys.context("d1"), keys.decisions) == 0
    with pytest.raises(ResponseError, match="WRONGTYPE"):  # without faults: raised
        await store.decisions.record([record])


@pytest.mark.parametrize("corrupt", ["profile", "windows", "first_seen"])
async def test_the_workers_read_of_a_customer_whose_keys_are_corrupt_fails_alone(
    store: FeatureStore, admin: aioredis.Redis, corrupt: str
) -> None:
    """The worker's read (view.lua) meets a key of another type, or a field that is no
    number: that customer's fault is told apart, and the others are read."""
    customers = (await seed(store, customers=6, touchpoints=120))[:3]
    keys = store._keys.for_customer(customers[1])
    if corrupt == "first_seen":
        await admin.hset(keys.profile, "first_seen", "yesterday")
    else:
        await admin.set(getattr(keys, corrupt), "not what it should be")
    with pytest.raises((ResponseError, ValueError)):  # without faults: the whole read fails
        await store.read_views(customers)
    faults: dict[str, Exception] = {}
    views = await store.read_views(customers, faults=faults)
    assert list(faults) == [customers[1]]
    assert views[1] == (False, None)
    assert all(features is not None for _, features in (views[0], views[2]))
    alone = (await store.read_views([customers[0]]))[0][1]
    assert alone is not None and views[0][1] is not None
    assert (views[0][1].events, views[0][1].segment) == (alone.events, alone.segment)
