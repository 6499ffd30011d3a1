"""Two customers' touchpoints that share an event id each get their own decision (real
Redis).

The contract wants event ids unique, yet producers that number events per source send
the same id for two customers, and the store dedupes each customer's own. Each event is
decided, in one batch or in two, under decision and alert ids of its customer's own;
each is marked decided for its customer alone. A decision a Moments before per-customer
ids recorded (under the id it gave it, from the event id alone) and never marked sent
is sent again under that id when a worker of this one reads its touchpoint again.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from aiokafka import AIOKafkaProducer

from agents.batch_result import BatchResult
from agents.catalogue_holder import CatalogueHolder
from agents.contact_policy import ContactPolicy
from agents.control_group import ControlGroup
from agents.letters import SourceRecord
from agents.moments import legacy_decision_id
from agents.offer_rules import RuleBasedOfferPolicy
from agents.touchpoint_handler import TouchpointHandler
from feature_store import FeatureStore, StoreConfig
from schemas import Offer, OfferCatalogue
from streams.services import LocalRedis
from streams.topics import keyed_partition
from tests.integration.conftest import Pipeline, consume_all

pytestmark = pytest.mark.integration

TIPS = Offer(offer_id="tips", title="Tips", channels=["web"])
POLICY = RuleBasedOfferPolicy(
    CatalogueHolder(OfferCatalogue(version="v1", offers=[TIPS])),
    ContactPolicy(ControlGroup("shared-salt", 0.0)),
)


def record(offset: int, event: dict[str, Any]) -> SourceRecord:
    return SourceRecord("touchpoints", 0, offset, event["customer_id"].encode(),
                        json.dumps(event).encode())  # fmt: skip


def cancel_click(customer: str, event_id: str = "click-0001") -> dict[str, Any]:
    """A visit to the cancellation page: a decision moment that raises an alert too."""
    at = datetime.now(UTC) - timedelta(minutes=1)
    return {"type": "web_click", "event_id": event_id, "customer_id": customer,
            "ts": at.isoformat(), "page": "/account/cancel"}  # fmt: skip


@pytest.fixture
async def store(private_redis: LocalRedis) -> AsyncIterator[FeatureStore]:
    config = StoreConfig(secret=b"shared-secret", prefix=f"sh{uuid.uuid4().hex[:8]}")
    store = FeatureStore.from_url(private_redis.url, config)
    yield store
    await store.close()


async def sent_and_confirmed(worker: TouchpointHandler, result: BatchResult) -> None:
    """What the touchpoint agent does with a batch once handled (Kafka left out)."""
    await worker.without_erased(result)
    await worker.reserve(result)
    await worker.confirm(result)


async def test_two_customers_events_with_one_id_in_one_batch_are_each_decided_once(
    store: FeatureStore,
) -> None:
    worker = TouchpointHandler(store, POLICY)
    batch = [record(0, cancel_click("ann")), record(1, cancel_click("ben"))]
    result = await worker.handle(batch, Counter())
    assert result.results == [("web_click", "ok")] * 2
    assert [d.customer_id for d in result.decisions] == ["ann", "ben"]
    assert len({d.decision_id for d in result.decisions}) == 2
    assert [i.customer_id for i in result.interventions] == ["ann", "ben"]
    assert len({i.intervention_id for i in result.interventions}) == 2
    await sent_and_confirmed(worker, result)
    # each is marked decided for its own customer: read again, neither is decided again
    replayed = await TouchpointHandler(store, POLICY).handle(batch, Counter())
    assert replayed.results == [("web_click", "duplicate")] * 2
    assert replayed.decisions == [] and replayed.interventions == []


async def test_the_second_customers_event_in_a_later_batch_gets_its_own_decision_id(
    store: FeatureStore,
) -> None:
    worker = TouchpointHandler(store, POLICY)
    first = await worker.handle([record(0, cancel_click("cleo"))], Counter())
    await sent_and_confirmed(worker, first)
    second = await worker.handle([record(1, cancel_click("dan"))], Counter())
    assert second.results == [("web_click", "ok")]
    ((cleo,), (dan,)) = first.decisions, second.decisions
    assert dan.customer_id == "dan" and dan.decision_id != cleo.decision_id
    assert first.interventions[0].intervention_id != second.interventions[0].intervention_id
    # replayed, each batch decides nothing again (its own customer's mark)
    again = await worker.handle([record(0, cancel_click("cleo"))], Counter())
    assert again.decisions == []


async def test_a_decision_an_older_moments_recorded_is_sent_again_under_its_older_id(
    store: FeatureStore,
) -> None:
    """An older worker recorded the decision (under the id it gave it) and stopped before
    Kafka took it, or before it was marked sent: this one sends it again under that id,
    with the offers it recorded, and marks it decided under it."""
    older = TouchpointHandler(store, POLICY)
    click = cancel_click("eve", event_id="e-9")
    result = await older.handle([record(0, click)], Counter())
    (decided,) = result.decisions
    legacy = legacy_decision_id("e-9", "web")  # as the older Moments named it
    recorded = msgspec.structs.replace(decided, decision_id=legacy)
    result.decisions = [recorded]
    result.moments = {legacy: replace(result.moments[decided.decision_id], decision_id=legacy)}
    await older.without_erased(result)
    await older.reserve(result)  # recorded, and the trigger marked recorded: then it stops
    worker = TouchpointHandler(store, POLICY)
    replayed = await worker.handle([record(0, click)], Counter())
    assert replayed.results == [("web_click", "duplicate")]
    assert replayed.decisions == [recorded]  # not a second decision under a new id
    await sent_and_confirmed(worker, replayed)
    assert (await worker.handle([record(0, click)], Counter())).decisions == []


async def test_a_worker_sends_two_customers_their_own_decisions_on_one_event_id(
    pipeline: Pipeline,
) -> None:
    """Straight through Kafka: two customers' clicks that share an event id, on one
    partition (their keys hash there), read in one batch: each customer gets their
    decision, under an id of their own."""
    names = (f"shared-{n}" for n in range(1000))
    by_partition: dict[int, list[str]] = {}
    while True:  # two customers whose keys go to the same of the 4 partitions
        name = next(names)
        found = by_partition.setdefault(keyed_partition(name.encode(), 4), [])
        found.append(name)
        if len(found) == 2:
            break
    worker = pipeline.start_worker()
    producer = AIOKafkaProducer(bootstrap_servers=pipeline.services.kafka_bootstrap,
                                acks="all", linger_ms=200)  # fmt: skip
    await producer.start()
    try:
        for customer in found:
            await producer.send(pipeline.topic("touchpoints"),
                                json.dumps(cancel_click(customer)).encode(),
                                key=customer.encode())  # fmt: skip
        await producer.flush()
    finally:
        await producer.stop()
    bootstrap = pipeline.services.kafka_bootstrap
    sent = await consume_all(bootstrap, pipeline.topic("next-best-offers"), expected=2)
    decisions = [json.loads(r.value) for r in sent]  # type: ignore[attr-defined]
    assert sorted(d["customer_id"] for d in decisions) == sorted(found)
    assert len({d["decision_id"] for d in decisions}) == 2
    alerts = await consume_all(bootstrap, pipeline.topic("interventions"), expected=2)
    assert len({json.loads(r.value)["intervention_id"] for r in alerts}) == 2  # type: ignore[attr-defined]
    deadline = time.monotonic() + 30
    while worker.metric_sum("moments_events_total", result="ok") < 2:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.25)
    assert worker.metric("moments_events_misrouted_total") == 0
