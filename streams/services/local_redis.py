"""Local ``redis-server`` processes: one server, or a three-master Redis Cluster."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from streams.services.processes import (
    LocalProcess,
    ServiceError,
    dies_with_parent,
    free_cluster_port,
    free_port,
    wait_until,
)


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
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=dies_with_parent(),
        )
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

        def cluster_ok() -> bool:  # on every node: the others learn of the slots by gossip,
            # and a client sent to one that has not yet answers CLUSTERDOWN
            for node in self.nodes:
                info = subprocess.run(
                    [cli, "-p", str(node.port), "cluster", "info"],
                    capture_output=True, text=True, check=False,
                )  # fmt: skip
                if "cluster_state:ok" not in info.stdout:
                    return False
            return True

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
