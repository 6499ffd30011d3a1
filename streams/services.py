"""Kafka and Redis for development, tests and the demo: given, in Docker, or local processes.

The order (DESIGN.md §3): ``MOMENTS_KAFKA_BOOTSTRAP`` / ``MOMENTS_REDIS_URL`` when set;
otherwise testcontainers when a Docker engine answers; otherwise a single-node KRaft
broker run by the system JVM from the Apache Kafka jars (fetched once with Maven into
a cache folder) and ``redis-server``, on free loopback ports in temporary folders.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCAL_DIR = REPO_ROOT / "deploy" / "local"
KAFKA_VERSION = os.environ.get("MOMENTS_LOCAL_KAFKA_VERSION", "4.1.1")


class ServiceError(RuntimeError):
    """A service could not be found or started; the message says what to do."""


def cache_dir() -> Path:
    base = os.environ.get("MOMENTS_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "moments"
    )
    return Path(base)


def free_port() -> int:
    """A loopback port that is free now (the kernel picks one from its ephemeral range)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_cluster_port() -> int:
    """A free port whose Redis Cluster bus port (port + 10000) is free too.

    Both lie below 32768, outside Linux's default ephemeral range, so no
    outgoing connection takes the bus port between this check and the bind.
    """
    for _ in range(500):
        port = random.randrange(20000, 22768)
        if _bindable(port) and _bindable(port + 10000):
            return port
    raise ServiceError("no free port pair (port, port + 10000) between 20000 and 32768")


def wait_until(check: Any, what: str, timeout: float, proc: subprocess.Popen[bytes] | None) -> None:
    """Poll ``check()`` until it returns true; fail early if ``proc`` died."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServiceError(f"{what} exited with code {proc.returncode} before it was ready")
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
    raise ServiceError(f"{what} was not ready within {timeout:.0f}s")


# --- Kafka jars --------------------------------------------------------------------------


def kafka_libs(version: str = KAFKA_VERSION) -> Path:
    """The folder of Kafka broker jars, resolved with Maven on first use."""
    libs = cache_dir() / f"kafka-{version}" / "libs"
    if libs.is_dir() and any(libs.glob("kafka_2.13-*.jar")):
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ServiceError("Kafka jars are not cached and Maven (mvn) is not installed")
    log.info("resolving Apache Kafka %s jars with Maven into %s", version, libs)
    tmp = libs.with_name("libs.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = [
        mvn, "-q", "-B", "-f", str(LOCAL_DIR / "pom.xml"), "dependency:copy-dependencies",
        f"-Dkafka.version={version}", f"-DoutputDirectory={tmp}", "-DincludeScope=runtime",
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ServiceError(f"mvn could not fetch Kafka jars:\n{result.stdout}\n{result.stderr}")
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    return libs


# --- local processes ---------------------------------------------------------------------


@dataclass
class LocalProcess:
    name: str
    proc: subprocess.Popen[bytes]
    workdir: Path
    log_path: Path

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _kafka_ready(bootstrap: str) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    host, _, port = bootstrap.rpartition(":")
    if not _port_open(host, int(port)):
        return False

    async def probe() -> bool:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
        try:
            await admin.start()
            await admin.list_topics()
            return True
        finally:
            await admin.close()

    return asyncio.run(probe())


@dataclass(frozen=True)
class KafkaTls:
    """What a broker's TLS listener presents and whom it trusts (PEM files)."""

    keystore: Path  # the broker's private key (PKCS#8) followed by its certificate chain
    truststore: Path  # the CA certificates that client certificates must chain to
    client_auth: bool = True  # clients must present a certificate (mutual TLS)


@dataclass
class LocalKafka:
    """A single-node KRaft broker+controller from the Apache Kafka jars."""

    workdir: Path
    port: int = field(default_factory=free_port)
    controller_port: int = field(default_factory=free_port)
    process: LocalProcess | None = None
    # users (name -> password) of a second, SASL_PLAINTEXT listener taking PLAIN and
    # SCRAM-SHA-256/512 logins; none: no such listener
    sasl_users: dict[str, str] = field(default_factory=dict)
    sasl_port: int = field(default_factory=free_port)
    # an SSL listener as well, on ``tls_port``; none: no such listener
    tls: KafkaTls | None = None
    tls_port: int = field(default_factory=free_port)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.sasl_port}"

    @property
    def tls_bootstrap(self) -> str:
        return f"127.0.0.1:{self.tls_port}"

    def _config(self) -> Path:
        template = (LOCAL_DIR / "kafka-server.properties").read_text()
        more = []  # listener names, each also its security protocol
        if self.sasl_users:
            more.append(("SASL_PLAINTEXT", self.sasl_port))
        if self.tls is not None:
            more.append(("SSL", self.tls_port))
        text = template.format(
            port=self.port, controller_port=self.controller_port, log_dir=self.workdir / "data",
            more_listeners="".join(f",{name}://127.0.0.1:{port}" for name, port in more),
            more_protocols="".join(f",{name}:{name}" for name, _ in more),
        )  # fmt: skip
        if self.sasl_users:
            text += self._sasl_logins()
        if self.tls is not None:
            text += self._tls_files(self.tls)
        path = self.workdir / "server.properties"
        path.write_text(text)
        return path

    @staticmethod
    def _tls_files(tls: KafkaTls) -> str:
        listener = "listener.name.ssl.ssl"
        return "\n".join([
            f"{listener}.keystore.type=PEM",
            f"{listener}.keystore.location={tls.keystore}",
            f"{listener}.truststore.type=PEM",
            f"{listener}.truststore.location={tls.truststore}",
            f"{listener}.client.auth={'required' if tls.client_auth else 'none'}",
            "",
        ])  # fmt: skip

    def _sasl_logins(self) -> str:
        """The SASL listener's mechanisms and who may log in (PLAIN users are listed here;
        SCRAM users are added when the storage is formatted)."""
        plain_users = " ".join(f'user_{n}="{secret}"' for n, secret in self.sasl_users.items())
        listener = "listener.name.sasl_plaintext"
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        return "\n".join([
            "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
            f"{listener}.plain.sasl.jaas.config="
            f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};",
            f"{listener}.scram-sha-256.sasl.jaas.config={scram}",
            f"{listener}.scram-sha-512.sasl.jaas.config={scram}",
            "",
        ])  # fmt: skip

    def _java(self, main: str, *args: str, log_path: Path) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise ServiceError("no java on PATH: install a JDK 17+ to run the local Kafka broker")
        libs = kafka_libs()
        heap = os.environ.get("MOMENTS_LOCAL_KAFKA_HEAP", "512m")
        return [
            java, f"-Xmx{heap}", f"-Xms{heap}", "-XX:+UseG1GC", "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOCAL_DIR / 'kafka-log4j2.properties'}",
            f"-Dmoments.kafka.log={log_path}",
            "-cp", f"{libs}/*", main, *args,
        ]  # fmt: skip

    def start(self, timeout: float = 90.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self._config()
        cluster_id = kafka_cluster_id()
        log_path = self.workdir / "kafka.log"
        scram = [
            arg for name, secret in self.sasl_users.items()
            for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512")
            for arg in ("--add-scram", f"{mechanism}=[name={name},password={secret}]")
        ]  # fmt: skip
        fmt = self._java(
            "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config),
            "--standalone", *scram, log_path=log_path,
        )  # fmt: skip
        result = subprocess.run(fmt, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ServiceError(f"formatting Kafka storage failed: {result.stdout}{result.stderr}")
        self._run(timeout)

    def restart(self, timeout: float = 90.0) -> None:
        """Stop the broker and start it again on the same port and data."""
        self.stop()
        self._run(timeout)

    def _run(self, timeout: float) -> None:
        config = self.workdir / "server.properties"
        log_path = self.workdir / "kafka.log"
        with log_path.open("ab") as out:
            proc = subprocess.Popen(
                self._java("kafka.Kafka", str(config), log_path=log_path),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.process = LocalProcess("kafka", proc, self.workdir, log_path)
        wait_until(lambda: _kafka_ready(self.bootstrap), "Kafka", timeout, proc)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()


def redis_server_binary() -> str:
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
    )
    if found is None:
        raise ServiceError(
            "redis-server is not installed: run `apt-get install redis-server` "
            "(make test and make run do this for you)"
        )
    return found


def kafka_cluster_id() -> str:
    """A random KRaft cluster id (22 URL-safe base64 characters). One that starts with
    "-" would be read as an option by ``kafka-storage format``, so none does.

    >>> len(kafka_cluster_id())
    22
    """
    while True:
        found = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not found.startswith("-"):
            return found


def _redis_ready(url: str) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=1)
    try:
        return bool(client.ping())
    finally:
        client.close()


@dataclass
class LocalRedis:
    workdir: Path
    port: int = field(default_factory=free_port)
    appendonly: bool = True
    process: LocalProcess | None = None
    extra_args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 30.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log_path = self.workdir / "redis.log"
        cmd = [
            redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.workdir), "--save", "", "--daemonize", "no",
            "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "everysec",
            "--logfile", str(log_path), *self.extra_args,
        ]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, start_new_session=True)
        self.process = LocalProcess("redis", proc, self.workdir, log_path)
        try:
            wait_until(lambda: _redis_ready(self.url), "Redis", timeout, proc)
        except ServiceError as exc:
            tail = log_path.read_text()[-1500:] if log_path.exists() else ""
            raise ServiceError(f"{exc}\n{tail}") from exc

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()


# --- the three ways to get services --------------------------------------------------------


@dataclass
class Services:
    """Where Kafka and Redis listen, and how they were obtained."""

    kafka_bootstrap: str
    redis_url: str
    origin: str  # "environment", "testcontainers" or "local"
    kafka: LocalKafka | None = None
    redis: LocalRedis | None = None


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
    from testcontainers.kafka import KafkaContainer
    from testcontainers.redis import RedisContainer

    kafka_image = os.environ.get("MOMENTS_KAFKA_IMAGE", "apache/kafka:4.1.1")
    with KafkaContainer(kafka_image).with_kraft() as kafka, RedisContainer() as redis_c:
        host = redis_c.get_container_host_ip()
        port = redis_c.get_exposed_port(6379)
        yield Services(kafka.get_bootstrap_server(), f"redis://{host}:{port}/0", "testcontainers")


@contextlib.contextmanager
def _local(root: Path | None = None) -> Iterator[Services]:
    keep = os.environ.get("MOMENTS_KEEP_SERVICE_DATA")
    tmp = Path(tempfile.mkdtemp(prefix="moments-services-", dir=root))
    kafka = LocalKafka(tmp / "kafka")
    redis_ = LocalRedis(tmp / "redis")
    try:
        redis_.start()
        kafka.start()
        yield Services(kafka.bootstrap, redis_.url, "local", kafka=kafka, redis=redis_)
    finally:
        kafka.stop()
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


@dataclass
class LocalRedisCluster:
    """Three masters on loopback, joined with ``redis-cli --cluster create``."""

    workdir: Path
    nodes: list[LocalRedis] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def start(self, masters: int = 3, timeout: float = 30.0) -> None:
        cli = shutil.which("redis-cli") or "/usr/bin/redis-cli"
        for i in range(masters):
            self.nodes.append(self._start_node(self.workdir / f"node{i}", timeout))
        addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
        create = [
            cli,
            "--cluster",
            "create",
            *addresses,
            "--cluster-replicas",
            "0",
            "--cluster-yes",
        ]
        result = subprocess.run(create, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ServiceError(f"redis-cli --cluster create failed: {result.stdout}{result.stderr}")

        def cluster_ok() -> bool:
            info = subprocess.run(
                [cli, "-p", str(self.nodes[0].port), "cluster", "info"],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            return "cluster_state:ok" in info.stdout

        wait_until(cluster_ok, "Redis Cluster", timeout, None)

    @staticmethod
    def _start_node(workdir: Path, timeout: float, attempts: int = 3) -> LocalRedis:
        """Start one cluster node, on a new port pair if another process took the last one."""
        for attempt in range(attempts):
            node = LocalRedis(workdir, port=free_cluster_port(), appendonly=False)
            node.extra_args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            try:
                node.start(timeout)
            except ServiceError as exc:
                if "Address already in use" not in str(exc) or attempt == attempts - 1:
                    raise
                shutil.rmtree(workdir, ignore_errors=True)
                continue
            return node
        raise AssertionError("unreachable")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
