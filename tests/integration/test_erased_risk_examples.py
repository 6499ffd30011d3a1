"""After a customer's erasure, the churn-risk model learns nothing more of theirs: not the
examples still in ``risk-examples`` or sent late (a worker behind, a sweep sent again),
nor those a learner reads again (a new model series learning the topic from its
beginning), nor the model ``moments rebuild`` learns again from the topic. Before, the
risk learner and the rebuild learned them all: the examples name their customer by a
keyed hash alone, and nothing looked up that hash's tombstone.

Checked from outside: touchpoints and the erasure through a real ``moments api``, the
examples labelled by a real worker (whose leader runs the risk learner) or written to the
topic with a plain producer, the model read as published in Redis, the counts from the
worker's ``/metrics``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from aiokafka import AIOKafkaProducer

from agents.risk_watch import example_id
from feature_store import FeatureStore, StoreConfig
from schemas.risk import RiskExample, encode_risk_example
from streams.model_snapshots import RISK, Snapshot
from streams.rebuild_risk import risk_model
from streams.settings import Settings
from streams.topics import RISK_EXAMPLES
from tests.integration.conftest import SECRET, Pipeline, Worker
from tests.integration.test_api_support import DEV_AUTH, call, event, eventually

pytestmark = pytest.mark.integration

EXAMPLES = "moments_risk_examples_total"


async def published_examples(store: FeatureStore) -> int:
    """How many examples the published churn-risk model has learned."""
    found = await store.models.load(RISK)
    if found is None:
        return 0
    return int(msgspec.json.decode(found[1], type=Snapshot).model["examples"])


async def send_late(bootstrap: str, topic: str, subjects: list[tuple[str, int]]) -> None:
    """Examples of the customers named (keyed hash, how many), as workers name them."""
    now = datetime.now(UTC)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for subject, n in subjects:
            for i in range(n):
                taken = now - timedelta(minutes=30 - i)
                example = RiskExample(
                    example_id=example_id(subject, int(taken.timestamp() * 1000)),
                    x={"experience": 0.3, "complaints_30d": 1.0},
                    y=i % 2 == 0,
                    snapshot_ts=taken,
                    label_ts=now,
                )
                await producer.send(topic, encode_risk_example(example))
        await producer.flush()
    finally:
        await producer.stop()


async def counted(worker: Worker, **want: float) -> bool:
    """Whether the worker's risk learner counted exactly ``want`` by result."""
    return all(worker.metric(EXAMPLES, result=r) == n for r, n in want.items())


async def test_an_erased_customers_risk_examples_teach_no_model_after_the_erasure(
    pipeline: Pipeline,
) -> None:
    services = pipeline.services
    worker = pipeline.start_worker()
    api = pipeline.start_api()
    ana, ben = f"{pipeline.prefix}ana", f"{pipeline.prefix}ben"
    store = pipeline.store()

    async def model_learned(n: int) -> bool:
        return await published_examples(store) == n

    try:
        # each customer visits (a snapshot of their features is taken), then calls to
        # cancel: the snapshot is labelled, and the worker sends its example
        visits = [event("web_click", c, f"{c}-1", minutes_ago=60) for c in (ana, ben)]
        posted = await call("POST", f"{api.url}/v1/events", headers=DEV_AUTH, body=visits)
        assert posted.status == 202, posted

        async def snapshots_taken() -> bool:
            views = [await store.read(c) for c in (ana, ben)]
            return all(v is not None and v.risk_snapshot is not None for v in views)

        await eventually(snapshots_taken, "both customers' snapshots taken")
        calls = [event("call", c, f"{c}-2", minutes_ago=50, reason="cancel") for c in (ana, ben)]
        posted = await call("POST", f"{api.url}/v1/events", headers=DEV_AUTH, body=calls)
        assert posted.status == 202, posted
        await eventually(lambda: counted(worker, learned=2), "both examples learned")
        await eventually(lambda: model_learned(2), "the model published")

        erased = await call("DELETE", f"{api.url}/v1/customers/{ana}", headers=DEV_AUTH)
        assert erased.status == 200, erased

        # examples of ana's sent after the erasure (a worker behind, a sweep sent again),
        # and ben's: only ben's teach
        topic = pipeline.topic(RISK_EXAMPLES)
        late = [(store.pseudonym(ana), 3), (store.pseudonym(ben), 2)]
        await send_late(services.kafka_bootstrap, topic, late)
        await eventually(lambda: counted(worker, learned=4, erased=3), "the late ones read")
        await eventually(lambda: model_learned(4), "ben's learned")
        assert await published_examples(store) == 4

        # a new model series (its snapshot dropped) learns the whole topic again: ana's
        # examples, those learned before the erasure too, teach it nothing
        worker.stop()
        await store.models.discard(RISK)
        again = pipeline.start_worker()
        await eventually(lambda: counted(again, relearned=3, erased=4), "the topic read again")
        await eventually(lambda: model_learned(3), "ben's learned again")
        assert again.metric(EXAMPLES, result="learned") == 0
        again.stop()  # nothing more learned from here
        assert await published_examples(store) == 3

        # moments rebuild learns the model again from the topic into a Redis where the
        # erasures were replayed first: ana's examples teach it nothing either
        target = FeatureStore.from_url(services.redis_url, StoreConfig(
            secret=SECRET.encode(), prefix=f"rb{uuid.uuid4().hex[:8]}"
        ))  # fmt: skip
        try:
            await target.erase(ana)  # as the rebuild's replay of customer-erasures does
            settings = Settings(kafka_bootstrap=services.kafka_bootstrap,
                                topic_prefix=pipeline.prefix)  # fmt: skip
            assert (await risk_model(settings, target, 500)).examples == 3
        finally:
            await target.close()
    finally:
        await store.close()
