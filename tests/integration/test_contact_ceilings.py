"""Contact caps and cool-downs hold across API processes (real Redis and Kafka).

Two Recommenders with a store connection each stand for two API processes: neither
counts the other's decisions in flight, so both decide from the same counts. The store
checks each contact against the caps it was decided within where it is recorded, and
the decision that comes second is taken again from a new read.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from agents.catalogue_holder import CatalogueHolder
from agents.contact_policy import ContactPolicy
from agents.control_group import ControlGroup
from agents.letters import SourceRecord
from agents.offer_rules import RuleBasedOfferPolicy
from agents.reserved_contacts import Refusals
from agents.touchpoint_handler import TouchpointHandler
from feature_store import FeatureStore, StoreConfig
from schemas import (
    ContactRules,
    NextBestOffer,
    Offer,
    OfferCatalogue,
    WebClick,
    decode_touchpoint,
    encode_touchpoint,
)
from streams.api.publisher import KeyedPublisher
from streams.api.recommender import Recommender
from streams.services import Services
from tests.integration.conftest import Pipeline, consume_all
from tests.integration.test_api_support import DEV_AUTH, call

pytestmark = pytest.mark.integration

TIPS = Offer(offer_id="tips", title="Tips", channels=["web", "email"])
GUIDE = Offer(offer_id="guide", title="Guide", channels=["web"], cooldown_s=3600)
WEB_THREE_A_DAY = OfferCatalogue(
    version="ceilings", offers=[TIPS], contact_policy=ContactRules(daily_caps={"web": 3})
)
COOLING = OfferCatalogue(version="cooling", offers=[GUIDE])


def unique(what: str) -> str:
    return f"ceil{uuid.uuid4().hex[:10]}-{what}"


class TwoProcesses:
    """Two Recommenders on one Redis (one connection each) and one decisions topic."""

    def __init__(self, services: Services, producer: AIOKafkaProducer) -> None:
        config = StoreConfig(secret=b"ceilings-test-secret", prefix=unique("store"))
        self.stores = [FeatureStore.from_url(services.redis_url, config) for _ in range(2)]
        self.topic = unique("decisions")
        self.services = services
        self.producer = producer

    def start(self, catalogue: OfferCatalogue) -> list[Recommender]:
        policy = RuleBasedOfferPolicy(
            CatalogueHolder(catalogue), ContactPolicy(ControlGroup("salt", 0.0))
        )
        return [
            Recommender(store, policy, KeyedPublisher(self.producer), self.topic, budget_s=5.0)
            for store in self.stores
        ]

    async def known(self, customer: str) -> None:
        """The customer clicked a page a while ago."""
        await self.stores[0].apply([decode_touchpoint(json.dumps({
            "type": "web_click", "event_id": unique("e"), "customer_id": customer,
            "ts": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(), "page": "/",
        }))])  # fmt: skip
        for store in self.stores:  # both connected: their reads go at once
            assert await store.read(customer) is not None

    async def published(self, expected: int) -> list[str]:
        records = await consume_all(self.services.kafka_bootstrap, self.topic, expected, 20)
        return [json.loads(r.value)["decision_id"] for r in records]  # type: ignore[attr-defined]

    async def close(self) -> None:
        for store in self.stores:
            await store.close()


@pytest.fixture
async def two(kafka_redis: Services, producer: AIOKafkaProducer) -> AsyncIterator[TwoProcesses]:
    found = TwoProcesses(kafka_redis, producer)
    try:
        yield found
    finally:
        await found.close()


async def test_forty_requests_over_two_processes_get_the_daily_cap_and_no_more(
    two: TwoProcesses,
) -> None:
    """One customer asked for forty times at once, twenty to each process, with a daily
    cap of three on web: three decisions show offers, whichever process took them."""
    customer = unique("busy")
    await two.known(customer)
    first, second = two.start(WEB_THREE_A_DAY)
    asked = [rec.recommend(customer, "web", 1) for _ in range(20) for rec in (first, second)]
    answers = await asyncio.gather(*asked)
    await asyncio.gather(first.drain(), second.drain())
    decisions = [a for a in answers if isinstance(a, NextBestOffer)]
    assert len(decisions) == 40
    offered = [d for d in decisions if d.offers]
    assert len(offered) == 3
    assert all("suppressed:fatigue:web:day" in d.reasons for d in decisions if not d.offers)
    features = await two.stores[1].read(customer)
    assert features is not None and features.contact.shown_today == {"web": 3}
    # the decisions answered are those stored and published; refused ones are neither
    contexts = await two.stores[0].decisions.contexts([(customer, d.decision_id)
                                                        for d in decisions])  # fmt: skip
    assert all(c is not None for c in contexts)
    assert sorted(await two.published(40)) == sorted(d.decision_id for d in decisions)


async def test_a_cool_down_holds_across_processes(two: TwoProcesses) -> None:
    customer = unique("cooling")
    await two.known(customer)
    first, second = two.start(COOLING)
    answers = await asyncio.gather(
        first.recommend(customer, "web", 1), second.recommend(customer, "web", 1)
    )
    await asyncio.gather(first.drain(), second.drain())
    assert all(isinstance(a, NextBestOffer) for a in answers)
    shown = [a for a in answers if a is not None and a.offers]
    assert len(shown) == 1
    other = next(a for a in answers if a is not None and not a.offers)
    assert "suppressed:cooldown:guide" in other.reasons


CAPPED_WEB = """
version = "capped-web"
default_offers = ["tips"]

[contact_policy]
daily_caps = { web = 3 }

[[offers]]
offer_id = "tips"
title = "Tips for your new purchase"
channels = ["web"]
"""


async def test_two_api_processes_asked_at_once_show_the_daily_cap(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """The drill, end to end: forty requests for one customer at once, twenty to each of
    two `moments api` processes, with a daily cap of three on web."""
    path = tmp_path / "capped.toml"
    path.write_text(CAPPED_WEB)
    settings = {"MOMENTS_CATALOGUE_PATH": str(path), "MOMENTS_CONTROL_PERCENT": "0",
                "MOMENTS_API_BUDGET_MS": "5000"}  # fmt: skip
    apis = [pipeline.start_api(**settings), pipeline.start_api(**settings)]
    customer = unique("drill")
    urls = [f"{api.url}/v1/customers/{customer}/recommendations?channel=web" for api in apis]
    replies = await asyncio.gather(*(call("GET", url, headers=DEV_AUTH)
                                     for _ in range(20) for url in urls))  # fmt: skip
    assert [r.status for r in replies] == [200] * 40
    answers = [r.json for r in replies]
    assert not any(a["fallback"] for a in answers)
    assert sum(1 for a in answers if a["offers"]) == 3
    assert all("suppressed:fatigue:web:day" in a["reasons"] for a in answers if not a["offers"])
    refused = sum(api.metric("moments_contacts_refused_total") for api in apis)
    print(f"decisions refused over a ceiling and taken again: {refused:.0f}")


def clicks(customer: str, worker: str, n: int) -> list[SourceRecord]:
    """``n`` page views of the customer just now, as a worker's batch of records."""
    now = datetime.now(UTC)
    return [
        SourceRecord("touchpoints", 0, i, customer.encode(), encode_touchpoint(WebClick(
            event_id=f"{worker}-{i}", customer_id=customer, ts=now, page="/p")))
        for i in range(n)
    ]  # fmt: skip


async def test_two_workers_deciding_at_once_keep_the_daily_cap(two: TwoProcesses) -> None:
    """Two workers decide on three clicks each of one customer from the same counts; the
    contacts of the first are recorded, those of the second refused: its decisions are
    taken again before anything is sent, and show nothing."""
    customer = unique("clicks")
    await two.known(customer)
    policy = RuleBasedOfferPolicy(
        CatalogueHolder(WEB_THREE_A_DAY), ContactPolicy(ControlGroup("salt", 0.0))
    )
    first, second = (TouchpointHandler(store, policy) for store in two.stores)
    # both read the counts before either records anything
    results = [await h.handle(clicks(customer, f"w{i}", 3), Counter())
               for i, h in enumerate((first, second))]  # fmt: skip
    assert [sum(1 for d in r.decisions if d.offers) for r in results] == [3, 3]
    ids = [d.decision_id for d in results[1].decisions]
    assert await first.reserve(results[0]) == Refusals()
    assert await second.reserve(results[1]) == Refusals(contacts=3)  # decided again
    assert [d.decision_id for d in results[1].decisions] == ids  # the same moments
    assert not any(d.offers for d in results[1].decisions)
    assert all("suppressed:fatigue:web:day" in d.reasons for d in results[1].decisions)
    for handler, result in zip((first, second), results, strict=True):
        await handler.confirm(result)  # after delivery: counted once
    features = await two.stores[0].read(customer)
    assert features is not None and features.contact.shown_today == {"web": 3}


async def test_a_worker_stopped_before_sending_has_its_decision_sent_as_it_was(
    two: TwoProcesses,
) -> None:
    """A worker records a batch's decisions with their contacts and stops before Kafka
    takes them; the worker that replays the batch sends the recorded decision again, as
    it was (the same offers, its contact counted once), not one decided anew from counts
    that now show its contact."""
    customer = unique("replayed")
    await two.known(customer)
    offers = [Offer(offer_id=f"o{i}", title=f"Offer {i}", channels=["web"], cooldown_s=3600,
                    priority=10 - i) for i in range(4)]  # fmt: skip
    policy = RuleBasedOfferPolicy(
        CatalogueHolder(OfferCatalogue(version="replayed", offers=offers)),
        ContactPolicy(ControlGroup("salt", 0.0)),
    )
    stopped, replaying = (TouchpointHandler(store, policy) for store in two.stores)
    batch = clicks(customer, "stopped", 1)
    first = await stopped.handle(batch, Counter())
    assert await stopped.reserve(first) == Refusals()  # recorded; then the worker stops
    again = await replaying.handle(batch, Counter())  # applied already: sent again
    assert again.results == [("web_click", "duplicate")]
    assert again.decisions == first.decisions and len(first.decisions[0].offers) == 3
    assert await replaying.reserve(again) == Refusals()
    await replaying.confirm(again)  # sent, this time
    features = await two.stores[0].read(customer)
    assert features is not None and features.contact.shown_today == {"web": 1}
    assert set(features.contact.last_shown) == {o.offer_id for o in first.decisions[0].offers}
    # marked sent: a later replay decides nothing
    assert (await replaying.handle(batch, Counter())).decisions == []


async def test_a_customer_whose_decision_keys_are_corrupt_is_dead_lettered_alone(
    two: TwoProcesses,
) -> None:
    """A worker records its decisions before sending them: one customer's recent
    decisions key holds a string (no touchpoint's apply touches it). Their touchpoint is
    dead-lettered with the reason; the other customers' decisions are kept to be sent."""
    import redis.asyncio as aioredis

    customers = [unique(f"keys{i}") for i in range(3)]
    for customer in customers:
        await two.known(customer)
    store = two.stores[0]
    admin = aioredis.Redis.from_url(two.services.redis_url)
    try:
        await admin.set(store._keys.for_customer(customers[1]).decisions, "not a sorted set")
    finally:
        await admin.aclose()
    policy = RuleBasedOfferPolicy(
        CatalogueHolder(WEB_THREE_A_DAY), ContactPolicy(ControlGroup("salt", 0.0))
    )
    handler = TouchpointHandler(store, policy)
    batch = [r for i, c in enumerate(customers) for r in clicks(c, f"k{i}", 1)]
    result = await handler.handle(batch, Counter())
    assert len(result.decisions) == 3
    assert await handler.reserve(result) == Refusals()
    assert [d.customer_id for d in result.decisions] == [customers[0], customers[2]]
    (letter,) = result.dead_letters
    assert letter.record.key == customers[1].encode()
    assert letter.error.startswith("decision record failed: ResponseError: WRONGTYPE")
    assert [r for _, r in result.results] == ["ok", "failed", "ok"]


def withdrawal(customer: str, channel: str) -> list[Any]:
    return [decode_touchpoint(json.dumps({
        "type": "consent", "event_id": unique("w"), "customer_id": customer,
        "ts": datetime.now(UTC).isoformat(), "channel": channel, "granted": False,
    }))]  # fmt: skip


async def test_a_withdrawal_applied_after_the_apis_read_refuses_its_contact(
    two: TwoProcesses,
) -> None:
    """A worker applies a web withdrawal (here: `all`) between the API's read of the
    features and the record of its decision: the store refuses the contact, and the
    decision taken again from a new read shows nothing."""
    customer = unique("withdrew")
    await two.known(customer)
    api, _ = two.start(WEB_THREE_A_DAY)
    store = two.stores[0]
    read = store.read_for_decisions

    async def read_then_withdraw(*args: Any, **kwargs: Any) -> Any:
        found = await read(*args, **kwargs)
        if not getattr(read_then_withdraw, "done", False):
            read_then_withdraw.done = True  # type: ignore[attr-defined]
            await two.stores[1].apply(withdrawal(customer, "all"))
        return found

    store.read_for_decisions = read_then_withdraw  # type: ignore[method-assign]
    answer = await api.recommend(customer, "web", 1)
    await api.drain()
    assert isinstance(answer, NextBestOffer)
    assert answer.offers == [] and "suppressed:consent:web" in answer.reasons
    features = await two.stores[1].read(customer)
    assert features is not None and features.contact.shown_today == {}


async def test_a_withdrawal_applied_after_a_workers_read_refuses_its_contacts(
    two: TwoProcesses,
) -> None:
    customer = unique("worker-withdrew")
    await two.known(customer)
    policy = RuleBasedOfferPolicy(
        CatalogueHolder(WEB_THREE_A_DAY), ContactPolicy(ControlGroup("salt", 0.0))
    )
    handler = TouchpointHandler(two.stores[0], policy)
    result = await handler.handle(clicks(customer, "w", 2), Counter())
    assert all(d.offers for d in result.decisions)
    await two.stores[1].apply(withdrawal(customer, "web"))  # another worker, meanwhile
    assert await handler.reserve(result) == Refusals(contacts=2)  # decided again
    assert not any(d.offers for d in result.decisions)
    assert all("suppressed:consent:web" in d.reasons for d in result.decisions)
