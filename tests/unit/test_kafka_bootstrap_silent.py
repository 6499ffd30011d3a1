"""A Kafka bootstrap address that takes connections but never answers (a wrong port, a
port that is not Kafka, a load balancer with nothing behind it): the API logged
``Unable connect to "h:p": `` with an empty reason, and stopped pointing at "the log
lines above" for it. It now says what it saw: the connection taken, no answer."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from streams import kafka_bootstrap, topics
from streams.cli import main
from streams.services import free_port


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that takes connections and never answers on them."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield server.getsockname()[1]


def test_a_bootstrap_that_never_answers_is_said_in_the_last_line(
    silent_port: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    for name in [n for n in os.environ if n.startswith("MOMENTS_")]:
        monkeypatch.delenv(name)
    address = f"127.0.0.1:{silent_port}"
    monkeypatch.setenv("MOMENTS_KAFKA_BOOTSTRAP", address)
    monkeypatch.setenv("MOMENTS_API_PORT", str(free_port()))
    monkeypatch.setenv("MOMENTS_API_PROBE_PORT", "0")
    quick: dict[str, Any] = {"request_timeout_ms": 1500}  # not aiokafka's 40 s, here
    monkeypatch.setattr(topics, "client_options", lambda: quick)
    kafka_bootstrap.SEEN.clear()  # this process's: what other tests' clients saw
    try:
        assert main(["api"]) == 3
    finally:
        kafka_bootstrap.SEEN.clear()
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith(f"moments: cannot use Kafka at {address} over PLAINTEXT"), last
    assert f"{address} accepted the connection but gave no answer within 40 s" in last, last
    assert "the log lines above" not in last
    unable = [r.getMessage() for r in caplog.records if r.msg == kafka_bootstrap.UNABLE]
    assert unable and unable[0].endswith(": TimeoutError: no answer within 40 s"), unable


def test_an_address_that_refuses_connections_is_not_said_to_take_them() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, not listening: refused
        said = kafka_bootstrap.said_of({f"127.0.0.1:{port}": TimeoutError()},
                                       kafka_bootstrap.accepts)  # fmt: skip
    assert said == (f"127.0.0.1:{port}: TimeoutError: no answer within 40 s (it does not "
                    "take connections either)")  # fmt: skip


def test_a_broker_down_once_is_not_given_as_the_reason_for_another_refusal() -> None:
    """A rolling restart: kafka-0 refused a connection, the client bootstrapped through
    kafka-1, and then Kafka refused a topic (an ACL). The last line said what the client
    saw of kafka-0, sending the operator to the wrong broker."""
    from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError

    from streams.kafka_security import connection_trouble
    from streams.settings import Settings

    settings = Settings(kafka_bootstrap="kafka-0:9092,kafka-1:9092")
    seen: dict[str, BaseException] = {"kafka-0:9092": ConnectionRefusedError(111, "refused")}
    said = connection_trouble(settings, TopicAuthorizationFailedError("touchpoints"), seen)
    assert "TopicAuthorizationFailedError" in said
    assert "kafka-0:9092: ConnectionRefusedError" not in said, said
    assert said.endswith("the log lines above give the reason the client saw."), said
    failed = KafkaConnectionError("Unable to bootstrap from [('kafka-0', 9092)]")
    assert connection_trouble(settings, failed, seen).endswith(
        "what the client saw: kafka-0:9092: ConnectionRefusedError: [Errno 111] refused"
    )
