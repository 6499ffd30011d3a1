"""Real Kafka and Redis for integration tests, and Moments workers as subprocesses."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from feature_store import FeatureStore, StoreConfig
from streams.services import LocalKafka, LocalRedis, Services, free_port, services
from streams.services.local_redis import LocalRedisCluster
from tests.integration import forked_starts
from tests.integration.forked_starts import Started

SECRET = "integration-test-secret"


@pytest.fixture(scope="session")
def kafka_redis() -> Iterator[Services]:
    with services() as found:
        yield found


@dataclass
class Worker:
    proc: Started  # a Popen, or a copy of the launcher (see forked_starts)
    port: int
    log_path: Path
    probe_port: int = 0  # an API's MOMENTS_API_PROBE_PORT (a worker: none)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample on /metrics (0 when absent)."""
        _, body = self.get("/metrics")
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in body.splitlines():
            if line.startswith("#"):
                continue
            series, _, value = line.rpartition(" ")
            metric, _, rest = series.partition("{")
            got = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
            if metric == name and got == want:
                return float(value)
        return 0.0

    def metric_sum(self, name: str, **labels: str) -> float:
        """The sum of the samples of one metric that carry ``labels`` (and any others)."""
        _, body = self.get("/metrics")
        want = {f'{k}="{v}"' for k, v in labels.items()}
        total = 0.0
        for line in body.splitlines():
            series, _, value = line.rpartition(" ")
            metric, _, rest = series.partition("{")
            labelled = set(rest.rstrip("}").split(","))
            if not line.startswith("#") and metric == name and want <= labelled:
                total += float(value)
        return total

    def terminate(self) -> None:
        """Tell the process to stop (SIGTERM), without waiting for it."""
        if self.proc.poll() is None:
            self.proc.terminate()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                # not stopped on SIGTERM: SIGABRT has Python write its threads' stacks
                # into the log (PYTHONFAULTHANDLER), the place it hung; then a warning
                # in the run's summary says where to look
                self.proc.send_signal(signal.SIGABRT)
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
                warnings.warn(
                    f"{self.log_path} did not stop within 30 s of SIGTERM: its threads' "
                    "stacks are at the end of its log",
                    stacklevel=2,
                )


@dataclass
class Pipeline:
    """One isolated Moments deployment: its own topic prefix, app id and Redis key prefix."""

    services: Services
    tmp: Path
    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:8]}-")
    workers: list[Worker] = field(default_factory=list)

    def topic(self, name: str) -> str:
        return self.prefix + name

    def store(self) -> FeatureStore:
        """A store on the same Redis keys as this deployment's workers."""
        return FeatureStore.from_url(
            self.services.redis_url,
            StoreConfig(secret=SECRET.encode(), prefix=self.prefix.rstrip("-")),
        )

    def env(self, port: int) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            MOMENTS_KAFKA_BOOTSTRAP=self.services.kafka_bootstrap,
            MOMENTS_REDIS_URL=self.services.redis_url,
            MOMENTS_TOPIC_PREFIX=self.prefix,
            MOMENTS_REDIS_PREFIX=self.prefix.rstrip("-"),
            MOMENTS_APP_ID=f"{self.prefix}moments",
            MOMENTS_WEB_PORT=str(port or free_port()),  # 0 (an API's, a command's): refused
            MOMENTS_API_PROBE_PORT=str(free_port()),  # an API's: several run at once
            MOMENTS_DATA_DIR=str(self.tmp / "data"),
            MOMENTS_KEY_SECRET=SECRET,
            MOMENTS_LOG_LEVEL="warning",
            PYTHONFAULTHANDLER="1",  # its threads' stacks on SIGABRT (see Worker.stop)
        )
        return env

    def start_worker(self, timeout: float = 60.0, **env: str) -> Worker:
        port = free_port()
        return self._start("worker", port, {**self.env(port), **env}, timeout)

    def start_api(
        self,
        timeout: float = 60.0,
        redis_url: str | None = None,
        port: int | None = None,
        **env: str,
    ) -> Worker:
        """Start `moments api` for this deployment (on ``port``, or a free one); extra
        MOMENTS_* settings as keywords."""
        port = free_port() if port is None else port
        environ = {**self.env(0), "MOMENTS_API_PORT": str(port), **env}
        if redis_url is not None:
            environ["MOMENTS_REDIS_URL"] = redis_url
        api = self._start("api", port, environ, timeout)
        api.probe_port = int(environ["MOMENTS_API_PROBE_PORT"])
        return api

    def _start(self, command: str, port: int, environ: dict[str, str], timeout: float) -> Worker:
        """Run `moments <command>` and wait until its /readyz answers 200."""
        log_path = self.tmp / f"{command}-{port}.log"
        proc = forked_starts.start([command], environ, log_path)
        started = Worker(proc, port, log_path)
        self.workers.append(started)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{command} exited early (exit {proc.returncode}):\n"
                    f"{log_path.read_text()[-3000:]}"
                )
            try:
                status, _ = started.get("/readyz")
                if status == 200:
                    return started
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{command} not ready in {timeout}s:\n{log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        for worker in self.workers:  # all told at once: they stop side by side
            worker.terminate()
        for worker in self.workers:
            worker.stop()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[LocalRedis]:
    """A Redis of the test's own (no persistence), to stop, restart or turn into a replica."""
    redis = LocalRedis(tmp_path / "private-redis", appendonly=False)
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedisCluster]:
    """A Redis Cluster of three local nodes, one per test module."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed (make test installs it)")
    found = LocalRedisCluster(Path(tmp_path_factory.mktemp("cluster")))
    try:
        found.start()
        yield found
    finally:
        found.stop()


@pytest.fixture
def private_pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    """Kafka and Redis of the test's own, so that it can stop and restart them."""
    kafka, redis_ = LocalKafka(tmp_path / "kafka"), LocalRedis(tmp_path / "redis")
    redis_.start()
    kafka.start()
    p = Pipeline(Services(kafka.bootstrap, redis_.url, "local", kafka, redis_), tmp_path)
    try:
        yield p
    finally:
        p.stop()
        kafka.kill()  # its data is thrown away: no clean stop needed
        redis_.stop()


@pytest.fixture
def pipeline(kafka_redis: Services, tmp_path: Path) -> Iterator[Pipeline]:
    p = Pipeline(kafka_redis, tmp_path)
    try:
        yield p
    finally:
        p.stop()


async def consume_all(
    bootstrap: str, topic: str, expected: int, wait_s: float = 60.0
) -> list[object]:
    """Read a topic from the beginning until ``expected`` records arrived (or time is up)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    records: list[object] = []
    deadline = time.monotonic() + wait_s
    try:
        while len(records) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for msgs in batch.values():
                records.extend(msgs)
        # linger briefly: more than expected would be a bug worth seeing
        extra = await consumer.getmany(timeout_ms=1500)
        for msgs in extra.values():
            records.extend(msgs)
    finally:
        await consumer.stop()
    return records


@pytest.fixture
async def kafka_bootstrap(kafka_redis: Services) -> AsyncIterator[str]:
    yield kafka_redis.kafka_bootstrap


@pytest.fixture
async def producer(kafka_redis: Services) -> AsyncIterator[AIOKafkaProducer]:
    """A plain producer to the test Kafka, sending without waiting to fill a batch."""
    started = AIOKafkaProducer(
        bootstrap_servers=kafka_redis.kafka_bootstrap, acks="all", linger_ms=1
    )
    await started.start()
    try:
        yield started
    finally:
        await started.stop()


def loads(value: bytes) -> dict[str, object]:
    result: dict[str, object] = json.loads(value)
    return result


__all__ = ["Pipeline", "Worker", "asyncio", "consume_all", "loads"]
