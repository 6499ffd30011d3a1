"""Batched recommendations on real Redis and Kafka: the lean decision read, the
Recommender (one read, one write and one Kafka batch per turn of the event loop, the
latency budget, erased customers, callers that gave up) and the KeyedPublisher's
partitioning.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.partitioner import DefaultPartitioner

from agents.bandit import LinUCBOffers
from agents.catalogue_holder import CatalogueHolder
from agents.contact_policy import ContactPolicy
from agents.context import DIMENSION
from agents.control_group import ControlGroup
from agents.learned_policy import LearnedOfferPolicy, ModelHolder
from agents.offer_rules import RuleBasedOfferPolicy
from feature_store import (
    CustomerFeatures,
    FeatureStore,
    StoreConfig,
    StoreUnavailable,
    offers_shown_fact,
)
from feature_store.facts import ts_ms
from feature_store.features import build_features
from schemas import (
    NextBestOffer,
    decode_next_best_offer,
    decode_touchpoint,
    encode_decision,
    load_catalogue,
)
from streams.api.batch_decisions import DecisionCounters
from streams.api.decision_outbox import DecisionOutbox
from streams.api.publisher import KeyedPublisher
from streams.api.recommender import Recommender
from streams.services import Services
from streams.simulation.population import CustomerPopulation
from tests.integration.conftest import consume_all

_partitioner = DefaultPartitioner()

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = load_catalogue(REPO_ROOT / "deploy" / "catalogue" / "offers.toml")
CONTACT_POLICY = ContactPolicy(ControlGroup("salt", 0.0))
RULES = RuleBasedOfferPolicy(CatalogueHolder(CATALOGUE), CONTACT_POLICY)
CHANNELS = ("web", "email", "call", "sms")
DECISION_FIELDS = (
    "segment", "value", "experience", "consent", "contact", "category_affinity",
    "categories", "purchases", "emails", "last_seen", "last_purchase",
)  # fmt: skip


def unique(what: str) -> str:
    return f"rec{uuid.uuid4().hex[:10]}-{what}"


def slowed(
    monkeypatch: pytest.MonkeyPatch,
    store: FeatureStore,
    name: str,
    seconds: float,
    times: int | None = None,
    error: Exception | None = None,
    finished: asyncio.Event | None = None,
) -> list[int]:
    """Make the store's ``name`` (read_for_decisions or decisions.record) wait ``seconds``
    (on its first ``times`` calls only, if given), then raise ``error`` or carry on; sets
    ``finished`` once a call to it is over. Returns the sizes of the batches it is called
    with."""
    owner, _, attr = name.rpartition(".")
    target = getattr(store, owner) if owner else store
    real = getattr(target, attr)
    calls: list[int] = []

    async def wrapper(items: Sequence[Any], *args: Any, **kwargs: Any) -> Any:
        calls.append(len(items))
        try:
            if times is None or len(calls) <= times:
                await asyncio.sleep(seconds)
                if error is not None:
                    raise error
            return await real(items, *args, **kwargs)
        finally:
            if finished is not None:
                finished.set()

    monkeypatch.setattr(target, attr, wrapper)
    return calls


async def only_this_decision_kept_and_sent(
    recommender: Recommender,
    producer: AIOKafkaProducer,
    store: FeatureStore,
    services: Services,
    topic: str,
    answer: NextBestOffer,
) -> None:
    """Once everything under way is done, ``answer`` is the one decision on ``topic`` and
    the one stored for its customer."""
    await recommender.drain()
    await producer.flush()
    records = await published(services.kafka_bootstrap, topic, 1)
    assert [json.loads(r.value)["decision_id"] for r in records] == [answer.decision_id]
    assert await store.decisions.recent(answer.customer_id) == [encode_decision(answer).decode()]


@pytest.fixture
async def store(kafka_redis: Services) -> AsyncIterator[FeatureStore]:
    found = FeatureStore.from_url(
        kafka_redis.redis_url,
        StoreConfig(secret=b"recommender-test-secret", prefix=unique("store")),
    )
    try:
        yield found
    finally:
        await found.close()


async def seed(store: FeatureStore, customers: int = 60, touchpoints: int = 1500) -> list[str]:
    """A month of simulated touchpoints up to now, and some contacts in the last days;
    the ids of the customers the store now knows, sorted."""
    now = datetime.now(UTC)
    population = CustomerPopulation(size=customers, seed=5)
    span_s = 30 * 86400
    start = now - timedelta(seconds=span_s)
    events = [
        e for e in population.touchpoints(touchpoints, start, touchpoints / span_s) if e.ts < now
    ]
    await store.apply(events)
    known = sorted({e.customer_id for e in events})
    rng = random.Random(9)
    contacts = []
    for i in range(150):
        channel = rng.choice(CHANNELS)
        offers = [o.offer_id for o in CATALOGUE.offers if channel in o.channels]
        shown = rng.sample(offers, k=min(len(offers), 2))
        ts = now - timedelta(seconds=rng.uniform(60, 6 * 86400))
        contacts.append(offers_shown_fact(f"seed-{i}", rng.choice(known), channel, shown, ts))
    await store.apply_facts(contacts)
    return known


def decision_view(features: CustomerFeatures) -> dict[str, object]:
    return {name: getattr(features, name) for name in DECISION_FIELDS}


async def published(bootstrap: str, topic: str, expected: int) -> list[Any]:
    """Every record on the topic (waits for ``expected``, then lingers for extras)."""
    return list(await consume_all(bootstrap, topic, expected, wait_s=30))


def trained_policy() -> LearnedOfferPolicy:
    rng = random.Random(2)
    model = LinUCBOffers(DIMENSION)
    for _ in range(300):
        x = [1.0] + [rng.random() for _ in range(DIMENSION - 1)]
        offer = rng.choice(CATALOGUE.offers).offer_id
        model.learn_one(x, offer, float(rng.random() < 0.3))
    return LearnedOfferPolicy(
        CatalogueHolder(CATALOGUE), CONTACT_POLICY, ModelHolder(model, version=3)
    )


# --- the decision read --------------------------------------------------------------------


async def test_read_for_decisions_is_the_lean_build_of_the_raw_keys(store: FeatureStore) -> None:
    customers = await seed(store)
    erased, unknown = customers[0], unique("nobody")
    await store.erase(erased)
    live = customers[1:]
    now = time.time()
    now_ms = int(now * 1000)
    trips = store.round_trips
    views = await store.read_for_decisions([erased, *live, unknown], now=now)
    assert store.round_trips == trips + 1  # one round trip for the whole batch
    assert views[0] == (True, None)
    assert views[-1] == (False, None)
    assert len(views) == len(live) + 2
    busy = 0
    for customer_id, (was_erased, features) in zip(live, views[1:-1], strict=True):
        raw = await store.raw(customer_id)
        expected = build_features(raw["profile"], raw["windows"], [], now_ms, raw["contacts"],
                                  full=False)  # fmt: skip
        lean = {k: v for k, v in raw["windows"].items() if k[:1] in "dk"}  # m, h: not read
        assert build_features(raw["profile"], lean, [], now_ms, raw["contacts"],
                              full=False) == expected  # fmt: skip
        assert (was_erased, features) == (False, expected), customer_id
        assert features is not None
        full = await store.read(customer_id, now=now)
        assert full is not None
        assert decision_view(features) == decision_view(full), customer_id
        assert features.recent == [] and features.activity == {}
        busy += bool(full.recent) and bool(full.activity["30d"])
    assert busy >= 10  # the full read does have what the lean one leaves out
    assert await store.read(erased, now=now) is None
    assert await store.read_for_decisions([]) == []


async def test_a_customer_offered_something_before_any_touchpoint_has_caps_that_hold(
    store: FeatureStore,
) -> None:
    """Recommendations asked for a customer Moments has no touchpoint of: what it showed
    them is read back, so the next request meets the caps and cool-downs."""
    newcomer = unique("newcomer")
    now = datetime.now(UTC)
    shown = offers_shown_fact("d-first", newcomer, "email", ["free-shipping"], now)
    await store.decisions.record([], [shown])
    views = await store.read_for_decisions([newcomer]), await store.read_many([newcomer])
    assert [len(found) for found in views] == [1, 1]
    for (erased, lean), full in zip(*views, strict=True):
        assert not erased and lean is not None and full is not None
        assert lean.contact.shown_today == full.contact.shown_today == {"email": 1}


# --- the recommender ----------------------------------------------------------------------


def requests_for(customers: Sequence[str], n: int) -> list[tuple[str, str, int]]:
    return [(customers[i % 20], CHANNELS[i % len(CHANNELS)], 1 + i % 3) for i in range(n)]


@pytest.mark.parametrize("policy_name", ["rules", "learned"])
async def test_concurrent_requests_are_decided_in_batches_stored_and_published(
    store: FeatureStore, producer: AIOKafkaProducer, kafka_redis: Services, policy_name: str
) -> None:
    customers = await seed(store)
    policy = RULES if policy_name == "rules" else trained_policy()
    topic = unique("decisions")
    batches: list[int] = []
    failed: list[int] = []
    recommender = Recommender(
        store, policy, KeyedPublisher(producer), topic, budget_s=5.0,
        counters=DecisionCounters(batch_decided=batches.append, publish_failed=failed.append),
    )  # fmt: skip
    wanted = requests_for(customers, 50)
    trips = store.round_trips
    answers = await asyncio.gather(*(recommender.recommend(c, ch, n) for c, ch, n in wanted))
    await recommender.drain()
    await producer.flush()
    assert sum(batches) == 50 and len(batches) < 50, batches
    # one read and one write per batch (concurrent batches may even share round trips)
    assert store.round_trips - trips <= min(2 * len(batches), 10)
    decisions: list[NextBestOffer] = []
    for answer, (customer_id, channel, limit) in zip(answers, wanted, strict=True):
        assert answer is not None
        assert (answer.customer_id, answer.channel) == (customer_id, channel)
        assert answer.trigger_event_id is None and not answer.fallback
        assert len(answer.offers) <= limit
        assert answer.model_version == policy.model_version
        decisions.append(answer)
    assert len({d.decision_id for d in decisions}) == 50
    assert sum(bool(d.offers) for d in decisions) >= 10
    # every decision's context is kept, as the decision itself
    contexts = await store.decisions.contexts([(d.customer_id, d.decision_id) for d in decisions])
    assert contexts == [encode_decision(d).decode() for d in decisions]
    # the offers shown count as contacts (fatigue caps, cool-downs)
    newest: dict[tuple[str, str], int] = {}
    for d in decisions:
        if d.offers:
            key = (d.customer_id, d.channel)
            newest[key] = max(newest.get(key, 0), ts_ms(d.ts))
    for (customer_id, channel), ms in newest.items():
        features = await store.read(customer_id)
        assert features is not None
        assert ts_ms(features.contact.last_contact[channel]) == ms
    # and every decision is on the topic once, keyed by its customer
    records = await published(kafka_redis.kafka_bootstrap, topic, 50)
    assert len(records) == 50
    by_id = {json.loads(r.value)["decision_id"]: r for r in records}
    for d in decisions:
        record = by_id[d.decision_id]
        assert record.key == d.customer_id.encode()
        assert json.loads(record.value) == json.loads(encode_decision(d))
    assert failed == []


async def test_a_batch_holds_at_most_max_batch_requests(
    store: FeatureStore, producer: AIOKafkaProducer
) -> None:
    customers = await seed(store)
    batches: list[int] = []
    recommender = Recommender(
        store, RULES, KeyedPublisher(producer), unique("decisions"), budget_s=5.0,
        max_batch=8, counters=DecisionCounters(batch_decided=batches.append),
    )  # fmt: skip
    wanted = requests_for(customers, 50)
    answers = await asyncio.gather(*(recommender.recommend(c, ch, n) for c, ch, n in wanted))
    await recommender.drain()
    assert all(a is not None for a in answers)
    assert sum(batches) == 50
    assert max(batches) <= 8 and len(batches) >= 7, batches


# --- the publisher ------------------------------------------------------------------------


async def new_topic(
    bootstrap: str, topic: str, partitions: int, configs: dict[str, str] | None = None
) -> str:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1, topic_configs=configs or {})])
    finally:
        await admin.close()
    return topic


async def test_keyed_publisher_partitions_like_producer_send(
    producer: AIOKafkaProducer, kafka_redis: Services
) -> None:
    topic = await new_topic(kafka_redis.kafka_bootstrap, unique("keyed"), 4)
    # enough bytes per partition to need several batches each (16 KiB by default), in
    # two calls of the same turn: one that lingers for company, one that does not
    pad = b"x" * 200
    records = [(f"cust-{i:05d}".encode(), b"batched|%d|" % i + pad) for i in range(600)]
    publisher = KeyedPublisher(producer)
    first = publisher.publish(topic, records[:300])
    second = publisher.publish(topic, records[300:], linger=False)
    await asyncio.wait_for(asyncio.gather(first, second), 30)
    assert first.done() and second.done()
    # what producer.send does with the same keys
    sent = await asyncio.gather(*[await producer.send(topic, b"single", key=k) for k, _ in records])
    send_partition = {k: md.partition for (k, _), md in zip(records, sent, strict=True)}
    assert set(send_partition.values()) == {0, 1, 2, 3}
    consumed = await published(kafka_redis.kafka_bootstrap, topic, 1200)
    assert len(consumed) == 1200
    batched = [r for r in consumed if r.value.startswith(b"batched|")]
    assert sorted(int(r.value.split(b"|")[1]) for r in batched) == list(range(600))
    where: dict[int, list[tuple[int, int]]] = defaultdict(list)  # partition -> (offset, index)
    for r in batched:
        assert r.partition == send_partition[r.key], r.key
        where[r.partition].append((r.offset, int(r.value.split(b"|")[1])))
    for rows in where.values():  # within a partition, in the order published
        indexes = [i for _, i in sorted(rows)]
        assert indexes == sorted(indexes)
    # every batched record went before the single sends (they were written first)
    for partition, rows in where.items():
        singles = [r.offset for r in consumed if r.partition == partition and r.value == b"single"]
        assert max(o for o, _ in rows) < min(singles)
    nothing = publisher.publish(topic, [])
    assert nothing.done() and nothing.exception() is None  # resolved at once


async def test_a_batch_the_broker_refuses_fails_its_callers_alone(
    producer: AIOKafkaProducer, kafka_redis: Services
) -> None:
    # a batch over 2,000 bytes is refused (MessageSizeTooLarge); others are written
    topic = await new_topic(
        kafka_redis.kafka_bootstrap, unique("refusing"), 2, {"max.message.bytes": "2000"}
    )
    on = {p: next(k for i in range(100) if _partitioner(k := b"c%d" % i, [0, 1], [0, 1]) == p)
          for p in (0, 1)}  # fmt: skip
    publisher = KeyedPublisher(producer)  # the three go in one flush, in two batches
    small = publisher.publish(topic, [(on[0], b"small")])
    large = publisher.publish(topic, [(on[1], b"x" * 5000)])
    both = publisher.publish(topic, [(on[0], b"small too"), (on[1], b"tiny")])
    answers = await asyncio.wait_for(asyncio.gather(small, large, both, return_exceptions=True), 30)
    assert answers[0] is None, answers  # its batch was written
    assert isinstance(answers[1], MessageSizeTooLargeError), answers
    assert isinstance(answers[2], MessageSizeTooLargeError), answers  # half of it was not
    consumed = await published(kafka_redis.kafka_bootstrap, topic, 2)
    assert sorted(r.value for r in consumed) == [b"small", b"small too"]


# --- the latency budget and callers that gave up --------------------------------------------


async def test_a_spent_budget_raises_and_nothing_is_kept_or_sent(
    store: FeatureStore, producer: AIOKafkaProducer, kafka_redis: Services
) -> None:
    customers = await seed(store)
    customer = customers[3]
    topic = unique("decisions")
    publisher = KeyedPublisher(producer)
    batches: list[int] = []
    hasty = Recommender(store, RULES, publisher, topic, budget_s=0.000001,
                        counters=DecisionCounters(batch_decided=batches.append))  # fmt: skip
    before = await store.raw(customer)
    with pytest.raises(TimeoutError):
        await hasty.recommend(customer, "web", 3)
    await hasty.drain()
    assert batches == [1]  # it was read, and dropped once its caller had gone
    assert await store.decisions.recent(customer) == []
    assert await store.raw(customer) == before  # no contact recorded
    # a patient recommender on the same topic: only its decision is there
    patient = Recommender(store, RULES, publisher, topic, budget_s=5.0)
    answer = await patient.recommend(customer, "web", 3)
    assert answer is not None
    await only_this_decision_kept_and_sent(patient, producer, store, kafka_redis, topic, answer)


async def test_a_slow_read_runs_out_the_budget_but_the_next_request_is_served(
    store: FeatureStore,
    producer: AIOKafkaProducer,
    kafka_redis: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    customers = await seed(store)
    customer = customers[4]
    read_done = asyncio.Event()
    calls = slowed(monkeypatch, store, "read_for_decisions", 0.4, times=1, finished=read_done)
    topic = unique("decisions")
    recommender = Recommender(store, RULES, KeyedPublisher(producer), topic, budget_s=0.1)
    with pytest.raises(TimeoutError):
        await recommender.recommend(customer, "email", 2)
    # the budget, not the read, decided when to give up: the read began and is not over
    assert calls == [1] and not read_done.is_set()
    answer = await recommender.recommend(customer, "web", 2)
    assert answer is not None
    # the slow batch finishes too, and must leave no trace
    await only_this_decision_kept_and_sent(recommender, producer, store, kafka_redis, topic, answer)
    assert calls == [1, 1]


async def test_a_caller_that_gave_up_is_neither_stored_nor_published(
    store: FeatureStore,
    producer: AIOKafkaProducer,
    kafka_redis: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    customers = await seed(store)
    quitter, stayer = customers[5], customers[6]
    slowed(monkeypatch, store, "read_for_decisions", 0.3)
    topic = unique("decisions")
    batches: list[int] = []
    recommender = Recommender(store, RULES, KeyedPublisher(producer), topic, budget_s=5.0,
                              counters=DecisionCounters(batch_decided=batches.append))  # fmt: skip
    before = await store.raw(quitter)
    gives_up = asyncio.create_task(recommender.recommend(quitter, "web", 3))
    waits = asyncio.create_task(recommender.recommend(stayer, "web", 3))
    await asyncio.sleep(0.05)
    gives_up.cancel()
    answer = await waits
    with pytest.raises(asyncio.CancelledError):
        await gives_up
    await recommender.drain()
    await producer.flush()
    assert batches == [2]  # they were in one batch
    assert answer is not None and answer.customer_id == stayer
    assert await store.decisions.recent(quitter) == []
    assert await store.raw(quitter) == before
    records = await published(kafka_redis.kafka_bootstrap, topic, 1)
    assert [r.key for r in records] == [stayer.encode()]


async def test_a_budget_spent_during_the_write_answers_the_decision_taken(
    store: FeatureStore,
    producer: AIOKafkaProducer,
    kafka_redis: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The decision was taken from real features: the caller gets it when the budget
    runs out, and it is stored and published like any other (the customer sees it)."""
    customers = await seed(store)
    customer = customers[2]
    written = asyncio.Event()
    writes = slowed(monkeypatch, store, "decisions.record", 1.5, finished=written)
    topic = unique("decisions")
    # a budget that a stall of the machine does not run out before the write begins
    recommender = Recommender(store, RULES, KeyedPublisher(producer), topic, budget_s=0.5)
    answer = await recommender.recommend(customer, "web", 3)
    assert answer is not None and answer.customer_id == customer and not answer.fallback
    assert writes == [1] and not written.is_set(), "the answer waited for the write"
    await recommender.drain()
    assert written.is_set()
    await producer.flush()
    records = await published(kafka_redis.kafka_bootstrap, topic, 1)
    assert [decode_next_best_offer(r.value) for r in records] == [answer]
    stored = [decode_next_best_offer(c) for c in await store.decisions.recent(customer)]
    assert answer in stored


async def test_a_decision_answered_by_the_budget_is_published_even_if_storing_fails(
    store: FeatureStore,
    producer: AIOKafkaProducer,
    kafka_redis: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The caller was shown the decision when the latency budget ran out; then its write
    failed. It is published once Redis says the customer is not erased (the check
    records it), as a fallback would be."""
    customers = await seed(store)
    customer = customers[3]
    gone = StoreUnavailable("Redis went away during the write")
    slowed(monkeypatch, store, "decisions.record", 1.5, times=1, error=gone)
    topic = unique("decisions")
    recommender = Recommender(store, RULES, KeyedPublisher(producer), topic, budget_s=0.5)
    answer = await recommender.recommend(customer, "web", 3)
    assert answer is not None and not answer.fallback
    await recommender.drain()
    await producer.flush()
    records = await published(kafka_redis.kafka_bootstrap, topic, 1)
    assert [decode_next_best_offer(r.value) for r in records] == [answer]
    recent = await store.decisions.recent(customer)  # recorded by the check
    assert [decode_next_best_offer(c).decision_id for c in recent] == [answer.decision_id]
    # a request in the same situation whose budget had not run out gets the error
    slowed(monkeypatch, store, "decisions.record", 0.3, error=gone)
    slow_budget = Recommender(store, RULES, KeyedPublisher(producer), topic, budget_s=5.0)
    with pytest.raises(StoreUnavailable):
        await slow_budget.recommend(customer, "web", 3)


# (a gather of 0.5 s: a stall of the machine between two newcomers, 10 ms apart, would
# have to last most of it to split them)
@pytest.mark.parametrize(("gather_s", "expected"), [(0.0, [1] * 6), (0.5, [1, 5])])
async def test_under_load_requests_gather_into_the_next_batch(
    store: FeatureStore,
    producer: AIOKafkaProducer,
    monkeypatch: pytest.MonkeyPatch,
    gather_s: float,
    expected: list[int],
) -> None:
    """A lone request goes at once; while a batch is being decided, newcomers wait up to
    ``gather_s`` to share the next one."""
    customers = await seed(store)
    slowed(monkeypatch, store, "read_for_decisions", 0.3)
    batches: list[int] = []
    recommender = Recommender(
        store, RULES, KeyedPublisher(producer), unique("decisions"),
        budget_s=5.0, gather_s=gather_s, counters=DecisionCounters(batch_decided=batches.append),
    )  # fmt: skip
    first = asyncio.create_task(recommender.recommend(customers[0], "web", 3))
    await asyncio.sleep(0.02)  # the first batch is being decided now
    later = []
    for customer in customers[1:6]:  # one every 10 ms, well within gather_s
        later.append(asyncio.create_task(recommender.recommend(customer, "web", 3)))
        await asyncio.sleep(0.01)
    answers = await asyncio.gather(first, *later)
    await recommender.drain()
    assert all(a is not None for a in answers)
    assert sorted(batches, reverse=True) == sorted(expected, reverse=True), batches


# --- erased and unknown customers ---------------------------------------------------------


async def test_a_fallbacks_offers_count_against_the_next_decisions_cool_downs(
    store: FeatureStore, producer: AIOKafkaProducer
) -> None:
    """A fallback answer showed free-shipping (cool-down a day) but was recorded without
    its contact: once Redis answered again, the customer was shown it again at once."""
    from agents.control_group import ControlGroup as Group
    from agents.fallback_offers import fallback_decision

    customer = unique("fallen-back")
    recommender = Recommender(store, RULES, KeyedPublisher(producer), unique("decisions"),
                              budget_s=5.0)  # fmt: skip
    fallback = fallback_decision(customer, "web", 3, "latency_budget", CATALOGUE,
                                 Group("salt", 0.0), datetime.now(UTC))  # fmt: skip
    assert [o.offer_id for o in fallback.offers] == ["free-shipping"]
    recommender.publish_soon(fallback)
    await recommender.drain()
    (features,) = [f for _, f in await store.read_for_decisions([customer])]
    assert features is not None and "free-shipping" in features.contact.last_shown
    decision = await recommender.recommend(customer, "web", 10)
    await recommender.drain()
    assert decision is not None
    assert "free-shipping" not in {o.offer_id for o in decision.offers}
    assert "suppressed:cooldown:free-shipping" in decision.reasons


async def test_an_erased_customer_gets_none_and_leaves_no_trace(
    store: FeatureStore, producer: AIOKafkaProducer, kafka_redis: Services
) -> None:
    customers = await seed(store)
    erased, live, unknown = customers[7], customers[8], unique("first-contact")
    await store.erase(erased)
    topic = unique("decisions")
    batches: list[int] = []
    recommender = Recommender(store, RULES, KeyedPublisher(producer), topic, budget_s=5.0,
                              counters=DecisionCounters(batch_decided=batches.append))  # fmt: skip
    gone, known, new = await asyncio.gather(
        recommender.recommend(erased, "web", 3),
        recommender.recommend(live, "web", 3),
        recommender.recommend(unknown, "web", 3),
    )
    await recommender.drain()
    await producer.flush()
    assert batches == [3]
    assert gone is None
    assert known is not None and new is not None
    assert "segment:new" in new.reasons  # no features: a first contact
    assert await store.decisions.recent(erased) == []
    assert await store.raw(erased) == {
        "profile": {}, "windows": {}, "recent": {}, "contacts": {}, "seen": [], "optouts": {},
    }  # fmt: skip
    assert await store.read_for_decisions([erased]) == [(True, None)]
    records = await published(kafka_redis.kafka_bootstrap, topic, 2)
    assert sorted(r.key for r in records) == sorted([live.encode(), unknown.encode()])
    assert erased.encode() not in {r.key for r in records}
    contexts = await store.decisions.contexts(
        [(live, known.decision_id), (unknown, new.decision_id)]
    )
    assert contexts == [encode_decision(known).decode(), encode_decision(new).decode()]


def erase_before_recording(
    monkeypatch: pytest.MonkeyPatch, store: FeatureStore, customer_id: str, then_s: float = 0.0
) -> None:
    """The customer is erased just before the next batch's decisions are recorded (and
    the recording waits ``then_s`` more)."""
    real_record = store.decisions.record

    async def erased_meanwhile(*args: Any, **kwargs: Any) -> list[bool]:
        await store.erase(customer_id)
        await asyncio.sleep(then_s)
        return await real_record(*args, **kwargs)

    monkeypatch.setattr(store.decisions, "record", erased_meanwhile)


async def test_a_customer_erased_while_their_decision_is_taken_is_answered_as_erased(
    store: FeatureStore,
    producer: AIOKafkaProducer,
    kafka_redis: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The erasure lands after the batch read the customer's features and before their
    decision is stored: the store refuses the decision, so nothing of it (the features in
    its context included) is sent after the erasure; the caller is told the customer is
    erased, as if the read had seen it. The other customer of the batch is unaffected."""
    customers = await seed(store)
    leaving, staying = customers[3], customers[4]
    erase_before_recording(monkeypatch, store, leaving)
    topic = unique("decisions")
    recommender = Recommender(store, RULES, KeyedPublisher(producer), topic, budget_s=5.0)
    gone, kept = await asyncio.gather(
        recommender.recommend(leaving, "web", 3), recommender.recommend(staying, "web", 3)
    )
    await recommender.drain()
    await producer.flush()
    assert gone is None
    assert kept is not None
    records = await published(kafka_redis.kafka_bootstrap, topic, 1)
    assert [r.key for r in records] == [staying.encode()]
    assert await store.decisions.recent(leaving) == []


async def test_the_outbox_holds_a_batch_from_its_write_until_kafka_acknowledged_it(
    store: FeatureStore,
    producer: AIOKafkaProducer,
    kafka_redis: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both decisions go into the outbox with their write (one round trip); the one the
    store refused at erasure leaves it unpublished, the other once Kafka has it."""
    customers = await seed(store)
    leaving, staying = customers[5], customers[6]
    outbox = DecisionOutbox(store.outboxes)
    held_at_write: list[int] = []
    trips: list[int] = []
    real_record = store.decisions.record

    async def recorded(*args: Any, **kwargs: Any) -> list[bool]:
        await store.erase(leaving)
        before = store.round_trips
        kept = await real_record(*args, **kwargs)
        trips.append(store.round_trips - before)
        held_at_write.append(await store.outboxes.size(outbox.process))
        return kept

    monkeypatch.setattr(store.decisions, "record", recorded)
    topic = unique("decisions")
    recommender = Recommender(
        store, RULES, KeyedPublisher(producer), topic, budget_s=5.0, outbox=outbox
    )
    gone, kept = await asyncio.gather(
        recommender.recommend(leaving, "web", 3), recommender.recommend(staying, "web", 3)
    )
    assert gone is None and kept is not None
    assert held_at_write == [2] and trips == [1]
    await recommender.drain()
    await producer.flush()
    await asyncio.sleep(0.3)  # the removals of the last 100 ms
    assert await store.outboxes.size(outbox.process) == 0 and len(outbox) == 0
    records = await published(kafka_redis.kafka_bootstrap, topic, 1)
    assert [r.key for r in records] == [staying.encode()]


DEFAULT_OFFERS = set(CATALOGUE.default_offers)
# every offer but the defaults (which cannot have one) with a daily budget
BUDGETED = RuleBasedOfferPolicy(CatalogueHolder(msgspec.structs.replace(CATALOGUE, offers=[
    o if o.offer_id in DEFAULT_OFFERS else msgspec.structs.replace(o, daily_limit=1000)
    for o in CATALOGUE.offers
])), CONTACT_POLICY)  # fmt: skip


def budgeted(offers: Sequence[Any]) -> dict[str, int]:
    return {o.offer_id: 1 for o in offers if o.offer_id not in DEFAULT_OFFERS}


async def test_a_decision_refused_at_erasure_gives_its_offers_back_to_the_budgets(
    store: FeatureStore,
    producer: AIOKafkaProducer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The decision of a customer erased before it is stored is not made, so the day's
    counts hold only the other customer's offers (once the batch is drained)."""
    policy = BUDGETED
    customers = await seed(store)
    leaving, staying = customers[5], customers[6]
    erase_before_recording(monkeypatch, store, leaving)
    today = datetime.now(UTC).date()
    before = await store.budgets.spent(today)
    recommender = Recommender(store, policy, KeyedPublisher(producer), unique("decisions"),
                              budget_s=5.0)  # fmt: skip
    gone, kept = await asyncio.gather(
        recommender.recommend(leaving, "web", 3), recommender.recommend(staying, "web", 3)
    )
    await recommender.drain()
    assert gone is None and kept is not None and kept.offers
    spent = await store.budgets.spent(today)
    added = {o: n - before.get(o, 0) for o, n in spent.items() if n != before.get(o, 0)}
    assert added == budgeted(kept.offers)
    assert added  # the kept decision spent something: the check above can tell


async def test_decisions_recorded_are_answered_and_sent_when_the_budget_write_fails(
    store: FeatureStore,
    producer: AIOKafkaProducer,
    kafka_redis: Services,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The budget counts (on a Redis Cluster, another node's) cannot be written in the
    round trip that records the decisions: the decisions are made all the same, so
    their callers get them and they are published (they used to get an error, and a
    fallback was shown, while the decisions stayed recorded against the customers)."""
    customers = await seed(store)

    async def budgets_down(spends: Sequence[Any], limits: Any) -> set[str]:
        raise StoreUnavailable("the budgets' node is failing over")

    monkeypatch.setattr(store.budgets, "take", budgets_down)
    topic = unique("decisions")
    recommender = Recommender(store, BUDGETED, KeyedPublisher(producer), topic, budget_s=5.0)
    answers = await asyncio.gather(*(recommender.recommend(c, "web", 3) for c in customers[8:10]))
    await recommender.drain()
    await producer.flush()
    assert all(a is not None and budgeted(a.offers) for a in answers)
    records = await published(kafka_redis.kafka_bootstrap, topic, 2)
    assert sorted(r.key for r in records) == sorted(c.encode() for c in customers[8:10])
    assert "the budget spending of 2 decisions was not counted" in caplog.text


async def test_a_refused_decision_its_caller_was_shown_stays_counted(
    store: FeatureStore,
    producer: AIOKafkaProducer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The latency budget ran out while the decision was stored: its caller was answered
    with it, and showed its offers, before the store refused it at the erasure. Those
    offers were shown: they stay counted against the budgets."""
    leaving = (await seed(store))[7]
    erase_before_recording(monkeypatch, store, leaving, then_s=1.5)
    today = datetime.now(UTC).date()
    before = await store.budgets.spent(today)
    recommender = Recommender(store, BUDGETED, KeyedPublisher(producer), unique("decisions"),
                              budget_s=0.5)  # fmt: skip
    shown = await recommender.recommend(leaving, "web", 3)
    await recommender.drain()
    assert shown is not None and budgeted(shown.offers)
    spent = await store.budgets.spent(today)
    added = {o: n - before.get(o, 0) for o, n in spent.items() if n != before.get(o, 0)}
    assert added == budgeted(shown.offers)


async def test_one_customer_asked_for_twice_in_a_batch_is_capped_as_if_one_came_first(
    store: FeatureStore, producer: AIOKafkaProducer
) -> None:
    """Five email recommendations for one customer, decided in one batch: the daily email
    cap (one) holds within the batch, as it does across batches."""
    customer = unique("twice")
    await store.apply([decode_touchpoint(json.dumps({
        "type": "web_click", "event_id": unique("e"), "customer_id": customer,
        "ts": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(), "page": "/",
    }))])  # fmt: skip
    batches: list[int] = []
    recommender = Recommender(store, RULES, KeyedPublisher(producer), unique("decisions"),
                              budget_s=5.0,
                              counters=DecisionCounters(batch_decided=batches.append))  # fmt: skip
    answers = await asyncio.gather(*(recommender.recommend(customer, "email", 1)
                                     for _ in range(5)))  # fmt: skip
    await recommender.drain()
    assert batches == [5]  # one batch
    assert [bool(a.offers) for a in answers if a is not None] == [True, False, False, False, False]
    assert all("suppressed:fatigue:email:day" in a.reasons for a in answers[1:] if a is not None)


async def test_a_customer_moments_does_not_know_is_capped_within_a_batch_too(
    store: FeatureStore, producer: AIOKafkaProducer
) -> None:
    """No profile: the first request is a first contact, and those after it in the batch
    count its offers against the caps (they used to skip every customer rule)."""
    customer = unique("stranger")
    batches: list[int] = []
    recommender = Recommender(store, RULES, KeyedPublisher(producer), unique("decisions"),
                              budget_s=5.0,
                              counters=DecisionCounters(batch_decided=batches.append))  # fmt: skip
    answers = await asyncio.gather(*(recommender.recommend(customer, "email", 1)
                                     for _ in range(3)))  # fmt: skip
    await recommender.drain()
    assert batches == [3]
    assert [bool(a.offers) for a in answers if a is not None] == [True, False, False]
    assert all("suppressed:fatigue:email:day" in a.reasons for a in answers[1:] if a is not None)


async def test_a_catalogue_published_while_a_batch_reads_redis_applies_from_the_next_batch(
    store: FeatureStore, producer: AIOKafkaProducer
) -> None:
    """The batch read the budgets' limits of one catalogue and decided with the one
    published meanwhile: a newly limited offer was shown unchecked and never counted."""
    unlimited = msgspec.structs.replace(CATALOGUE, version="before")
    limited = msgspec.structs.replace(CATALOGUE, version="after", offers=[
        o if o.offer_id in CATALOGUE.default_offers else msgspec.structs.replace(o, daily_limit=5)
        for o in CATALOGUE.offers
    ])  # fmt: skip
    holder = CatalogueHolder(unlimited)
    policy = RuleBasedOfferPolicy(holder, CONTACT_POLICY)
    reading = store.read_for_decisions

    async def published_meanwhile(customer_ids: list[str], **kwargs: Any) -> Any:
        holder.current = limited  # what a reload does while the batch waits for Redis
        return await reading(customer_ids, **kwargs)

    store.read_for_decisions = published_meanwhile  # type: ignore[method-assign]
    recommender = Recommender(store, policy, KeyedPublisher(producer), unique("decisions"),
                              budget_s=5.0)  # fmt: skip
    decision = await recommender.recommend(unique("reload"), "web", 1)
    await recommender.drain()
    assert decision is not None and decision.offers
    counted = await store.budgets.spent(datetime.now(UTC).date())
    shown = decision.offers[0].offer_id
    # decided with the catalogue whose limits it read, or counted under the new one
    assert (decision.catalogue_version, counted.get(shown, 0)) in {("before", 0), ("after", 1)}
    assert decision.catalogue_version == "before"
    second = await recommender.recommend(unique("reload"), "web", 1)
    await recommender.drain()
    assert second is not None and second.catalogue_version == "after"
