"""Moments on a Kafka broker that speaks only TLS and wants client certificates (mutual
TLS), as private-network and managed deployments do: the API and a worker verify the
broker against a private CA and present certificates of their own; a client that does
not trust the broker, or that the broker does not trust, is refused with a clear error."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from streams.kafka_security import kafka_options
from streams.services import LocalKafka, Services
from streams.services.local_kafka import KafkaTls
from streams.settings import Settings
from tests.integration.certificates import Issued, PrivateCA
from tests.integration.conftest import Pipeline
from tests.integration.secured_kafka import ingest_decide_and_read_back

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class TlsBroker:
    kafka: LocalKafka
    ca: Path  # what the broker's certificate chains to
    client: Issued  # a client certificate the broker trusts
    stranger: Issued  # a client certificate from a CA the broker does not know


def tls_env(ca: Path | None, client: Issued | None) -> dict[str, str]:
    env = {"MOMENTS_KAFKA_SECURITY_PROTOCOL": "SSL"}
    if ca is not None:
        env["MOMENTS_KAFKA_SSL_CAFILE"] = str(ca)
    if client is not None:
        env["MOMENTS_KAFKA_SSL_CERTFILE"] = str(client.cert)
        env["MOMENTS_KAFKA_SSL_KEYFILE"] = str(client.key)
    return env


def client_options(ca: Path, client: Issued) -> dict[str, object]:
    """aiokafka options for a test client, built the way Moments builds its own."""
    env = {k.removeprefix("MOMENTS_").lower(): v for k, v in tls_env(ca, client).items()}
    return kafka_options(Settings(**env))


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    if shutil.which("java") is None:
        pytest.fail("java is not installed (make test installs it)")
    where = Path(tmp_path_factory.mktemp("tls-kafka"))
    authority = PrivateCA.create(where / "ca")
    broker = authority.issue("broker", ip="127.0.0.1")
    client = authority.issue("moments")
    stranger = PrivateCA.create(where / "other-ca", "another CA").issue("stranger")
    tls = KafkaTls(keystore=broker.key_and_chain(where / "broker-keystore.pem"),
                   truststore=authority.cert)  # fmt: skip
    kafka = LocalKafka(where / "kafka", tls=tls)
    try:
        kafka.start()
        yield TlsBroker(kafka, authority.cert, client, stranger)
    finally:
        kafka.stop()


@pytest.fixture
def tls_pipeline(
    tls_broker: TlsBroker, kafka_redis: Services, tmp_path: Path
) -> Iterator[Pipeline]:
    services = Services(tls_broker.kafka.tls_bootstrap, kafka_redis.redis_url, "local")
    found = Pipeline(services, tmp_path)
    try:
        yield found
    finally:
        found.stop()


async def test_api_and_worker_work_over_mutual_tls(
    tls_pipeline: Pipeline, tls_broker: TlsBroker
) -> None:
    env = tls_env(tls_broker.ca, tls_broker.client)
    api = tls_pipeline.start_api(**env, MOMENTS_CONTROL_PERCENT="0", MOMENTS_API_BUDGET_MS="5000")
    worker = tls_pipeline.start_worker(**env, MOMENTS_CONTROL_PERCENT="0")

    # API -> touchpoints -> worker -> Redis, and the decisions of both, all over TLS
    reader = client_options(tls_broker.ca, tls_broker.client)
    await ingest_decide_and_read_back(tls_pipeline, api, worker, reader, "tls")


def test_an_api_that_does_not_trust_the_broker_does_not_start(
    tls_pipeline: Pipeline, tls_broker: TlsBroker
) -> None:
    """Without the private CA, the broker's certificate cannot be verified."""
    with pytest.raises(RuntimeError, match=r"api exited early \(exit 3\)") as refused:
        tls_pipeline.start_api(**tls_env(None, tls_broker.client), timeout=60.0)
    said = str(refused.value)
    assert "CERTIFICATE_VERIFY_FAILED" in said
    assert f"cannot use Kafka at {tls_broker.kafka.tls_bootstrap} over SSL" in said
    assert "MOMENTS_KAFKA_SSL_CAFILE" in said


def test_clients_the_broker_does_not_trust_do_not_start(
    tls_pipeline: Pipeline, tls_broker: TlsBroker
) -> None:
    """A certificate from another CA, or none at all, is refused by the broker; the API
    and the worker stop with a message that says where and which settings to check."""
    for client in (tls_broker.stranger, None):
        with pytest.raises(RuntimeError, match=r"api exited early \(exit 3\)") as refused:
            tls_pipeline.start_api(**tls_env(tls_broker.ca, client), timeout=60.0)
        said = str(refused.value)
        assert f"cannot use Kafka at {tls_broker.kafka.tls_bootstrap} over SSL" in said
        assert "MOMENTS_KAFKA_SSL_CERTFILE" in said
        # the whole log: the error holds only its last 3,000 characters, which a long
        # traceback ending in the same message would fill without its first line
        assert "Traceback" not in tls_pipeline.workers[-1].log_path.read_text()
    with pytest.raises(RuntimeError, match=r"worker exited early \(exit 3\)") as refused:
        tls_pipeline.start_worker(**tls_env(tls_broker.ca, tls_broker.stranger), timeout=60.0)
    assert f"cannot use Kafka at {tls_broker.kafka.tls_bootstrap} over SSL" in str(refused.value)
