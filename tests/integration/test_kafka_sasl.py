"""Moments on a Kafka broker that wants SASL logins (PLAIN and SCRAM), as managed Kafka
services do: the API ingests and decides over one mechanism, a worker consumes and
decides over another, and a wrong password is refused with a clear error."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from streams.kafka_security import kafka_options
from streams.services import LocalKafka, Services
from streams.settings import Settings
from tests.integration.conftest import Pipeline
from tests.integration.secured_kafka import ingest_decide_and_read_back

pytestmark = pytest.mark.integration

USER, PASSWORD = "moments", "sasl-test-password"


def sasl_env(mechanism: str, password: str = PASSWORD) -> dict[str, str]:
    return {
        "MOMENTS_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "MOMENTS_KAFKA_SASL_MECHANISM": mechanism,
        "MOMENTS_KAFKA_SASL_USERNAME": USER,
        "MOMENTS_KAFKA_SASL_PASSWORD": password,
    }


def client(mechanism: str, password: str = PASSWORD) -> dict[str, object]:
    """aiokafka options for a test client, built the way Moments builds its own."""
    env = {k.removeprefix("MOMENTS_").lower(): v for k, v in sasl_env(mechanism, password).items()}
    return kafka_options(Settings(**env))


@pytest.fixture(scope="module")
def sasl_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    if shutil.which("java") is None:
        pytest.fail("java is not installed (make test installs it)")
    broker = LocalKafka(Path(tmp_path_factory.mktemp("sasl-kafka")), sasl_users={USER: PASSWORD})
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def sasl_pipeline(
    sasl_kafka: LocalKafka, kafka_redis: Services, tmp_path: Path
) -> Iterator[Pipeline]:
    found = Pipeline(Services(sasl_kafka.sasl_bootstrap, kafka_redis.redis_url, "local"), tmp_path)
    try:
        yield found
    finally:
        found.stop()


async def test_api_and_worker_log_in_with_plain_and_scram(sasl_pipeline: Pipeline) -> None:
    api = sasl_pipeline.start_api(
        **sasl_env("PLAIN"), MOMENTS_CONTROL_PERCENT="0", MOMENTS_API_BUDGET_MS="5000"
    )
    worker = sasl_pipeline.start_worker(  # on the standard library's loop (others: uvloop)
        **sasl_env("SCRAM-SHA-512"), MOMENTS_CONTROL_PERCENT="0",
        MOMENTS_EVENT_LOOP="asyncio", MOMENTS_LOG_LEVEL="info",
    )  # fmt: skip
    assert "(event loop: asyncio)" in worker.log_path.read_text()

    # API (PLAIN) -> touchpoints -> worker (SCRAM-SHA-512) -> Redis; decisions of both
    # read back over SCRAM-SHA-256
    await ingest_decide_and_read_back(sasl_pipeline, api, worker, client("SCRAM-SHA-256"), "sasl")


async def test_a_wrong_password_is_refused_with_a_clear_error(
    sasl_pipeline: Pipeline, sasl_kafka: LocalKafka, caplog: pytest.LogCaptureFixture
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=sasl_kafka.sasl_bootstrap, **client("SCRAM-SHA-256", "wrong")
    )
    try:
        with pytest.raises(KafkaError):
            await producer.start()
    finally:
        await producer.stop()
    assert "invalid credentials" in caplog.text  # aiokafka logs why it could not connect
    # the API does not start, and its log says why
    with pytest.raises(RuntimeError, match=r"api exited early \(exit 3\)") as refused:
        sasl_pipeline.start_api(**sasl_env("PLAIN", "wrong"), timeout=60.0)
    assert "SaslAuthenticationFailed" in str(refused.value)
    said = f"cannot use Kafka at {sasl_kafka.sasl_bootstrap} over SASL_PLAINTEXT"
    assert said in str(refused.value) and "MOMENTS_KAFKA_SASL_PASSWORD" in str(refused.value)
