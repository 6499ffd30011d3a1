"""Kafka and Redis for development, tests and the demo: given, in Docker, or local processes.

The order (DESIGN.md §3): ``MOMENTS_KAFKA_BOOTSTRAP`` / ``MOMENTS_REDIS_URL`` when set;
otherwise testcontainers when a Docker engine answers; otherwise a single-node KRaft
broker run by the system JVM from the Apache Kafka jars (fetched once with Maven into
a cache folder) and ``redis-server``, on free loopback ports in temporary folders.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from streams.services.local_kafka import LocalKafka
from streams.services.local_redis import LocalRedis
from streams.services.processes import (
    ServiceError,
    dies_with_parent,
    free_port,
    stopped_like_ctrl_c,
    uninterrupted,
)

__all__ = [
    "LocalKafka", "LocalRedis", "ServiceError", "Services", "dies_with_parent", "free_port",
    "services", "stopped_like_ctrl_c", "uninterrupted",
]  # fmt: skip


@dataclass
class Services:
    """Where Kafka and Redis listen, and how they were obtained."""

    kafka_bootstrap: str
    redis_url: str
    origin: str  # "environment", "testcontainers" or "local"
    kafka: LocalKafka | None = None
    redis: LocalRedis | None = None
    kept: Path | None = None  # local ones' folder, kept after (MOMENTS_KEEP_SERVICE_DATA)


def docker_available() -> bool:
    if os.environ.get("MOMENTS_NO_DOCKER"):
        return False
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        result = subprocess.run([docker, "info"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


@contextlib.contextmanager
def _testcontainers() -> Iterator[Services]:
    try:  # where testcontainers keeps them now (the old modules warn of their removal)
        from testcontainers.community.kafka import KafkaContainer
        from testcontainers.community.redis import RedisContainer
    except ImportError:  # a testcontainers from before the move
        from testcontainers.kafka import KafkaContainer
        from testcontainers.redis import RedisContainer

    kafka_image = os.environ.get("MOMENTS_KAFKA_IMAGE", "apache/kafka:4.1.1")
    redis_image = os.environ.get("MOMENTS_REDIS_IMAGE", "redis:7.4")  # not "latest"
    with (
        KafkaContainer(kafka_image).with_kraft() as kafka,
        RedisContainer(redis_image) as redis_c,
    ):
        host = redis_c.get_container_host_ip()
        port = redis_c.get_exposed_port(6379)
        yield Services(kafka.get_bootstrap_server(), f"redis://{host}:{port}/0", "testcontainers")


@contextlib.contextmanager
def _local(root: Path | None = None) -> Iterator[Services]:
    keep = os.environ.get("MOMENTS_KEEP_SERVICE_DATA", "").strip().lower() in (
        "1",
        "true",
        "yes",
        "on",  # a yes, as the settings read one
    )
    tmp = Path(tempfile.mkdtemp(prefix="moments-services-", dir=root))
    kafka = LocalKafka(tmp / "kafka")
    redis_ = LocalRedis(tmp / "redis")
    try:
        redis_.start()
        kafka.start()
        yield Services(kafka.bootstrap, redis_.url, "local", kafka=kafka, redis=redis_,
                       kept=tmp if keep else None)  # fmt: skip
    finally:
        with uninterrupted():  # a second Ctrl-C must not leave Redis running
            if keep:
                kafka.stop()
            else:  # its data is thrown away: a clean stop would only close its partitions,
                kafka.kill()  # ten seconds and more once a test run made a thousand topics
            redis_.stop()
            if not keep:
                shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def services() -> Iterator[Services]:
    """Find or start Kafka and Redis for the length of the ``with`` block."""
    bootstrap = os.environ.get("MOMENTS_KAFKA_BOOTSTRAP")
    redis_url = os.environ.get("MOMENTS_REDIS_URL")
    if bootstrap and redis_url:
        yield Services(bootstrap, redis_url, "environment")
    elif docker_available():
        with _testcontainers() as found:
            yield found
    else:
        with _local() as started:
            yield started
