"""A service Moments starts stops when the process that started it is killed outright."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from streams.services import dies_with_parent

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")

PARENT = """
import subprocess, sys, time
from streams.services import dies_with_parent
child = subprocess.Popen(
    [sys.executable, "-c", "import time; time.sleep(60)"], preexec_fn=dies_with_parent()
)
print(child.pid, flush=True)
time.sleep(60)
"""


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_child_is_stopped_when_its_parent_is_killed() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    try:
        assert _running(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while _running(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _running(child)
    finally:
        if _running(child):
            os.kill(child, signal.SIGKILL)


def test_off_the_main_thread_no_signal_is_armed() -> None:
    """The signal follows the thread that started the child: a short-lived one would
    stop the child when it ends."""
    got: list[object] = []
    thread = threading.Thread(target=lambda: got.append(dies_with_parent()))
    thread.start()
    thread.join()
    assert got == [None]
    assert dies_with_parent() is not None
