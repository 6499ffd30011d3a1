"""Records the broker keeps compressed (lz4, zstd, snappy: a topic's ``compression.type``,
or a producer's) are read by every Moments process that reads them: the worker applies a
touchpoint, its learner learns an outcome, the API hands an alert to a screen. Before
``cramjam`` was a dependency, aiokafka could not decode them, and the worker crashed on
the batch at every restart."""

from __future__ import annotations

import json

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tests.integration.conftest import Pipeline, Worker
from tests.integration.test_api_alerts import intervention, send
from tests.integration.test_api_support import DEV_AUTH, SseClient, eventually, once_counted
from tests.integration.test_learning import clicks, decisions_for, outcomes
from tests.integration.test_touchpoints_pipeline import produce

pytestmark = pytest.mark.integration

CODECS = ["lz4", "zstd", "snappy"]


async def compress(pipeline: Pipeline, topic: str, codec: str) -> None:
    """Have the broker keep ``topic``'s records compressed with ``codec``, whatever the
    producer sent (a plain producer here, so that only the reading side is tried)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=pipeline.services.kafka_bootstrap)
    await admin.start()
    try:
        config = {"compression.type": codec}
        resource = ConfigResource(ConfigResourceType.TOPIC, pipeline.topic(topic), configs=config)
        await admin.alter_configs([resource])
    finally:
        await admin.close()


async def still_running(worker: Worker) -> None:
    assert worker.proc.poll() is None, worker.log_path.read_text()[-2000:]


@pytest.mark.parametrize("codec", CODECS)
async def test_compressed_touchpoints_and_outcomes_are_applied(
    pipeline: Pipeline, codec: str
) -> None:
    worker = pipeline.start_worker()
    await compress(pipeline, "touchpoints", codec)
    await compress(pipeline, "offer-outcomes", codec)

    decisions = await decisions_for(pipeline, clicks(6))  # read from compressed batches
    await still_running(worker)
    assert decisions, worker.log_path.read_text()[-2000:]

    def applied() -> float:  # counted once the decisions are sent and recorded, a moment after
        return worker.metric("moments_events_total", type="web_click", result="ok")

    assert await once_counted(applied, 6, "the clicks counted") == 6

    records = outcomes(decisions)
    await produce(pipeline.services.kafka_bootstrap, pipeline.topic("offer-outcomes"), records)

    async def learned() -> bool:
        await still_running(worker)
        return worker.metric("moments_learning_outcomes_total", result="learned") == len(records)

    await eventually(learned, f"{len(records)} {codec} outcomes learned", within=60)


@pytest.mark.parametrize("codec", CODECS)
async def test_compressed_alerts_reach_screens(pipeline: Pipeline, codec: str) -> None:
    api = pipeline.start_api()
    await compress(pipeline, "interventions", codec)
    async with SseClient(f"{api.url}/v1/alerts/stream", DEV_AUTH) as screen:
        await screen.subscribed()
        await send(pipeline, intervention(1, None))
        alert = await screen.next()
        assert json.loads(alert.data)["intervention_id"] == "iv-1"
