"""A local Apache Kafka broker (KRaft, one node) run by the system JVM from the Kafka jars,
which Maven fetches once into a cache folder."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import shutil
import socket
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from streams.services.kafka_classes import archive_flags
from streams.services.processes import (
    LocalProcess,
    ServiceError,
    cache_dir,
    dies_with_parent,
    free_port,
    wait_until,
)

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCAL_DIR = REPO_ROOT / "deploy" / "local"


def local_file(name: str) -> Path:
    """A file of the checkout's deploy/local, which an installed Moments does not have."""
    path = LOCAL_DIR / name
    if not path.is_file():
        raise ServiceError(
            f"{path} is not there: the local Kafka (of `moments demo`, `moments bench` and"
            " the tests) runs from a checkout of the Moments repository"
        )
    return path


KAFKA_VERSION = os.environ.get("MOMENTS_LOCAL_KAFKA_VERSION", "4.1.1")


def kafka_libs(version: str = KAFKA_VERSION) -> Path:
    """The folder of Kafka broker jars, resolved with Maven on first use: one per Kafka
    version and ``pom.xml`` (a dependency added to it is fetched, not missed in a cache
    of the same version)."""
    pom = hashlib.sha256(local_file("pom.xml").read_bytes()).hexdigest()[:8]
    libs = cache_dir() / f"kafka-{version}-{pom}" / "libs"
    if libs.is_dir() and any(libs.glob("kafka_2.13-*.jar")):
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ServiceError("Kafka jars are not cached and Maven (mvn) is not installed")
    log.info("resolving Apache Kafka %s jars with Maven into %s", version, libs)
    tmp = libs.with_name("libs.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = [
        mvn, "-q", "-B", "-f", str(local_file("pom.xml")), "dependency:copy-dependencies",
        f"-Dkafka.version={version}", f"-DoutputDirectory={tmp}", "-DincludeScope=runtime",
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ServiceError(f"mvn could not fetch Kafka jars:\n{result.stdout}\n{result.stderr}")
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    return libs


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
    # where the broker writes the classes it loaded as it stops (see kafka_classes)
    archive_at_exit: Path | None = None

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
        template = local_file("kafka-server.properties").read_text()
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
        if self.archive_at_exit is not None and main == "kafka.Kafka":
            classes = [f"-XX:ArchiveClassesAtExit={self.archive_at_exit}"]
        else:
            classes = archive_flags(libs)
        return [
            java, f"-Xmx{heap}", f"-Xms{heap}", "-XX:+UseG1GC", "-XX:TieredStopAtLevel=1",
            *classes, "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={local_file('kafka-log4j2.properties')}",
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
                preexec_fn=dies_with_parent(),
            )
        self.process = LocalProcess("kafka", proc, self.workdir, log_path)
        wait_until(lambda: _kafka_ready(self.bootstrap), "Kafka", timeout, proc)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()


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
