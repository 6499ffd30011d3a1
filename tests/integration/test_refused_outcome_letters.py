"""An ``offer-outcomes-dlq`` whose ``max.message.bytes`` is below an invalid outcome's
letter: the learner writes the letter reduced, as the worker does a touchpoint's, counts
it once, and learns the outcomes after it (it failed on the refusal, restarted from its
snapshot, met the same record and failed again, for ever: the model learned nothing
more); one refused even reduced is dropped, and the learner goes on too. A reduced
letter is counted once (``moments_dead_letters_refused_total{outcome="reduced"}``, and once
as an invalid outcome), and a re-drive sends it nowhere."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tests.integration.conftest import Pipeline, Worker, consume_all
from tests.integration.test_api_support import once_counted
from tests.integration.test_dead_letter_redrive import dead_letters
from tests.integration.test_learning import clicks, decisions_for, outcomes, snapshot
from tests.integration.test_touchpoints_pipeline import produce

pytestmark = pytest.mark.integration

POISON = b'{"customer_id": "rol-9", "outcome": "' + b"x" * 10_000  # does not decode


async def limit_letters(pipeline: Pipeline, max_bytes: int) -> None:
    """Set ``offer-outcomes-dlq``'s ``max.message.bytes`` (the worker created it)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=pipeline.services.kafka_bootstrap)
    await admin.start()
    dlq = pipeline.topic("offer-outcomes-dlq")
    try:
        await admin.alter_configs([ConfigResource(
            ConfigResourceType.TOPIC, dlq, configs={"max.message.bytes": str(max_bytes)}
        )])  # fmt: skip
    finally:
        await admin.close()
    await asyncio.sleep(1)


def learner_restarts(worker: Worker) -> float:
    _, body = worker.get("/metrics")
    return sum(float(line.rpartition(" ")[2]) for line in body.splitlines()
               if line.startswith('moments_batch_retries_total{reason="learner:nbo'))  # fmt: skip


def refused(worker: Worker, outcome: str) -> float:
    return worker.metric("moments_dead_letters_refused_total", outcome=outcome)


def invalid(worker: Worker) -> float:
    return worker.metric("moments_learning_outcomes_total", result="invalid")


async def test_an_outcomes_letter_too_large_for_its_topic_is_reduced_and_learning_goes_on(
    pipeline: Pipeline,
) -> None:
    bootstrap = pipeline.services.kafka_bootstrap
    worker = pipeline.start_worker()
    await limit_letters(pipeline, 4000)
    good = outcomes(await decisions_for(pipeline, clicks(30, start=5000)))
    assert len(good) >= 2
    poisoned = [*good[:1], (b"rol-9", POISON), *good[1:]]
    await produce(bootstrap, pipeline.topic("offer-outcomes"), poisoned)

    letters: list[Any] = await consume_all(bootstrap, pipeline.topic("offer-outcomes-dlq"), 1,
                                           wait_s=30)  # fmt: skip
    assert len(letters) == 1, [dict(r.headers).get("error") for r in letters]
    (reduced,) = letters
    headers = dict(reduced.headers)
    assert reduced.key == b"rol-9" and len(reduced.value) == 1024
    assert headers["error"].startswith(b"invalid: "), headers["error"]
    assert headers["value-truncated-from"] == str(len(POISON)).encode()
    assert headers["letter-refused"] == b"MessageSizeTooLargeError"
    assert headers["source-topic"] == pipeline.topic("offer-outcomes").encode()
    model = await snapshot(pipeline, len(good), wait_s=60)
    assert model.updates == len(good)  # the outcomes after it teach
    assert learner_restarts(worker) == 0  # MomentsLearnerFailing: silent
    # counted a moment after Kafka took the letter (maybe after the snapshot)
    assert await once_counted(lambda: refused(worker, "reduced"), 1, "the letter counted") == 1
    assert refused(worker, "dropped") == 0
    assert await once_counted(lambda: invalid(worker), 1, "the outcome counted") == 1  # once
    redrive = dead_letters(pipeline, "--source", "offer-outcomes", "--redrive")["redrive"]
    assert redrive["truncated"] == 1 and redrive["redriven"] == 0  # for reading only


async def test_an_outcomes_letter_refused_even_reduced_is_dropped_and_learning_goes_on(
    pipeline: Pipeline,
) -> None:
    bootstrap = pipeline.services.kafka_bootstrap
    worker = pipeline.start_worker()
    await limit_letters(pipeline, 200)  # below a letter's headers
    good = outcomes(await decisions_for(pipeline, clicks(20, start=6000)))
    assert good
    await produce(bootstrap, pipeline.topic("offer-outcomes"), [(b"rol-8", POISON), *good])

    model = await snapshot(pipeline, len(good), wait_s=60)
    assert model.updates == len(good)
    assert learner_restarts(worker) == 0
    # counted once Kafka refused it reduced too (maybe after the snapshot)
    assert await once_counted(lambda: refused(worker, "dropped"), 1, "the letter counted") == 1
    assert refused(worker, "reduced") == 0
    assert await consume_all(bootstrap, pipeline.topic("offer-outcomes-dlq"), 0, wait_s=2) == []
    log = worker.log_path.read_text()
    (dropped,) = [line for line in log.splitlines() if "refused whole and reduced" in line]
    assert pipeline.topic("offer-outcomes") in dropped and "rol-8" not in dropped  # no customer
