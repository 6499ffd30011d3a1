"""Local Redis Cluster nodes need their bus port (port + 10000) free as well as their own."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from streams.services import local_redis
from streams.services.local_redis import LocalRedisCluster
from streams.services.processes import free_cluster_port

pytestmark = pytest.mark.integration


def test_free_cluster_ports_leave_the_bus_port_free_and_outside_the_ephemeral_range() -> None:
    for _ in range(50):
        port = free_cluster_port()
        assert port + 10000 < 32768
        for taken in (port, port + 10000):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", taken))


def test_a_node_whose_bus_port_is_taken_starts_on_a_new_pair(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed (make test installs it)")
    blocked = free_cluster_port()
    squatter = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    squatter.bind(("127.0.0.1", blocked + 10000))
    squatter.listen()
    offered = iter([blocked])
    real = local_redis.free_cluster_port
    monkeypatch.setattr(local_redis, "free_cluster_port", lambda: next(offered, None) or real())
    node = None
    try:
        node = LocalRedisCluster._start_node(tmp_path / "node", timeout=30.0)
        assert node.port != blocked
        assert node.process is not None and node.process.proc.poll() is None
    finally:
        squatter.close()
        if node is not None:
            node.stop()
