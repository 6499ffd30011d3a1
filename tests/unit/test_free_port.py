"""Ports handed out to local services: claimed for a while in a file shared by the
processes of a machine, so that two of them (the tests run in two) are not handed the
same port before its server binds it."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from streams.services import processes
from streams.services.processes import PORT_CLAIM_S, free_port


class KernelPicks:
    """Stands in for the socket the kernel binds to a port of its choice: these, in turn."""

    def __init__(self, ports: list[int]) -> None:
        self._ports = ports

    def __call__(self, *args: Any) -> KernelPicks:
        return self

    def __enter__(self) -> KernelPicks:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def bind(self, address: tuple[str, int]) -> None:
        self._port = self._ports.pop(0)

    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", self._port)


def test_a_port_handed_out_is_free_and_claimed(tmp_path: Path) -> None:
    claims = tmp_path / "claims.json"
    port = free_port(claims)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # free indeed
    assert port in {int(p) for p in json.loads(claims.read_text())}


def test_a_port_another_process_claimed_is_passed_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    claims = tmp_path / "claims.json"
    now = time.time()
    claims.write_text(json.dumps({"40001": now - 5, "40003": now - PORT_CLAIM_S - 1}))
    monkeypatch.setattr(processes.socket, "socket", KernelPicks([40001, 40003]))
    assert free_port(claims) == 40003  # 40001 is claimed; 40003's claim ran out
    kept = {int(p) for p in json.loads(claims.read_text())}
    assert kept == {40001, 40003}


def test_an_unreadable_claims_file_leaves_the_choice_to_the_kernel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    claims = tmp_path / "claims.json"
    claims.write_text("not json")
    monkeypatch.setattr(processes.socket, "socket", KernelPicks([40005, 40007]))
    assert free_port(claims) == 40005
    # garbled, it is written anew (it was left garbled, and claims unmade for good)
    assert {int(p) for p in json.loads(claims.read_text())} == {40005}
    assert free_port(tmp_path / "no-such-dir" / "claims.json") == 40007
