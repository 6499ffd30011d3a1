"""The round trip the Kafka security tests check: an API and a worker, both logged in to
a secured broker, ingest touchpoints, count them in Redis and decide; a client logged in
the same way reads both kinds of decision back."""

from __future__ import annotations

import json
from typing import Any

from aiokafka import AIOKafkaConsumer

from tests.integration.conftest import Pipeline, Worker
from tests.integration.test_api_support import DEV_AUTH, call, event, eventually, metric_total


async def ingest_decide_and_read_back(
    pipeline: Pipeline, api: Worker, worker: Worker, reader: dict[str, Any], tag: str
) -> None:
    """API -> touchpoints -> worker -> Redis; the decisions of the API (a recommendation)
    and of the worker (on the touchpoints) are read back by a consumer with ``reader``'s
    options."""
    sent = [event("web_click", f"{tag}-1", f"{tag}-e{i}") for i in range(3)]
    accepted = await call("POST", f"{api.url}/v1/events", headers=DEV_AUTH, body=sent)
    assert accepted.status == 202, accepted
    store = pipeline.store()
    try:

        async def counted() -> bool:
            return int((await store.raw(f"{tag}-1"))["profile"].get("n", 0)) == 3

        await eventually(counted, "the worker counted the three touchpoints")
    finally:
        await store.close()

    async def all_ok() -> bool:
        return metric_total(worker, "moments_events_total", result="ok") == 3

    await eventually(all_ok, "moments_events_total{result=ok} counts the three")

    answer = await call("GET", f"{api.url}/v1/customers/{tag}-2/recommendations", headers=DEV_AUTH)
    assert answer.status == 200 and answer.json["fallback"] is False, answer
    consumer = AIOKafkaConsumer(
        pipeline.topic("next-best-offers"), bootstrap_servers=pipeline.services.kafka_bootstrap,
        auto_offset_reset="earliest", group_id=None, **reader,
    )  # fmt: skip
    await consumer.start()
    decided: dict[str, str] = {}  # decision id -> customer id
    try:

        async def both_published() -> bool:
            batch = await consumer.getmany(timeout_ms=500)
            for record in (r for rs in batch.values() for r in rs):
                sent = json.loads(record.value)
                decided[sent["decision_id"]] = sent["customer_id"]
            return answer.json["decision_id"] in decided and f"{tag}-1" in decided.values()

        await eventually(both_published, "decisions of the API and the worker")
    finally:
        await consumer.stop()
