"""A topic that refuses the worker's records, as its log tells it: the retries and the
dead letter say what happened, once, and nothing of the records is quoted."""

from __future__ import annotations

import json
import signal

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.integration.conftest import Pipeline
from tests.integration.test_api_support import event, eventually, read_to_end
from tests.integration.test_touchpoints_pipeline import produce

pytestmark = pytest.mark.integration


async def test_decisions_a_topic_refuses_are_logged_without_faust_noise(
    pipeline: Pipeline,
) -> None:
    """asyncio logged each failed attempt again, as an error with a traceback, as
    "FutureMessage exception was never retrieved" (Faust's copy of the delivery, which
    nothing reads), and Faust's own warning ended with that copy's repr."""
    bootstrap = pipeline.services.kafka_bootstrap
    decisions = pipeline.topic("next-best-offers")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:  # made before the worker starts, with a limit no decision fits in
        await admin.create_topics([NewTopic(decisions, 4, 1, topic_configs={
            "max.message.bytes": "64"})])  # fmt: skip
    finally:
        await admin.close()
    worker = pipeline.start_worker(MOMENTS_LOG_LEVEL="info")
    customer = "refused-42"
    click = event("web_click", customer, "refused-e1")
    record = (customer.encode(), json.dumps(click).encode())
    await produce(bootstrap, pipeline.topic("touchpoints"), [record])

    async def lettered() -> list[object]:
        return await read_to_end(bootstrap, pipeline.topic("touchpoints-dlq"))

    await eventually(lettered, "the touchpoint dead-lettered after its retries", within=60)
    worker.proc.send_signal(signal.SIGTERM)
    worker.proc.wait(timeout=60)
    log = worker.log_path.read_text()
    assert f"Kafka did not take a record for topic {decisions}" in log, log[-3000:]
    assert "never retrieved" not in log and "FutureMessage" not in log, log[-6000:]
    assert customer not in log
