"""Starting `moments worker` and `moments api` for the integration tests, fast.

Each start of ``python -m streams.cli worker`` spends over a second of CPU importing
Faust, aiohttp, redis-py and Moments' modules, and the tests start some 250 of them on
CI's two cores. A *launcher* process, one per test process, imports them once and forks
a copy of itself for each start: the copy then runs ``streams.cli.main()`` as
``python -m streams.cli <command>`` would, with the test's environment, working
directory and log file, and exits as that would (its ``atexit`` handlers, its threads
joined). What runs is the real command; only the imports are shared.

A start is made the usual way (``subprocess.Popen``) when the launcher cannot give one
that is the same: its environment differs from the launcher's in anything but
``MOMENTS_*`` settings (which nothing reads while importing), ``PYTHONFAULTHANDLER``
and ``PYTEST_CURRENT_TEST``, or ``MOMENTS_TEST_FORKED_STARTS=0`` is set. Other tests start
``moments`` commands with ``subprocess`` themselves, so the usual start stays tested.

:class:`ForkedProcess` answers what the tests ask of a ``Popen`` (``pid``, ``poll``,
``wait``, ``returncode``, ``send_signal``, ``terminate``, ``kill``): a signal goes to
the process itself, and its exit status comes from the launcher, its parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Protocol

ENABLED = "MOMENTS_TEST_FORKED_STARTS"
# besides MOMENTS_*, what may differ from the launcher's environment: read by the
# interpreter at start, so set in the copy by hand (see _child); the test under way
FORKABLE_EXTRA = ("PYTHONFAULTHANDLER", "PYTEST_CURRENT_TEST")
PRELOADED = ("streams.cli", "streams.app", "streams.api.server", "streams.redis_checks",
             "streams.topics", "streams.event_loop", "streams.stop_watch",
             "streams.worker_stop", "streams.rebuild", "streams.dead_letter_tool",
             "streams.lift_report")  # fmt: skip


class Started(Protocol):
    """What the tests use of a started process (a ``Popen`` or a :class:`ForkedProcess`)."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def send_signal(self, sig: int) -> None: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...


# --- the launcher's side -----------------------------------------------------------


def _child(request: dict[str, Any], inherited: list[socket.socket]) -> None:
    """In the forked copy: become ``python -m streams.cli <args>`` and exit as it does."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for sock in inherited:
        sock.close()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    out = os.open(request["out"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(out, 1)
    if request["err"] != request["out"]:  # one file: one description, as 2>&1 gives
        os.close(out)
        out = os.open(request["err"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(out, 2)
    os.close(out)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    if os.environ.get("PYTHONFAULTHANDLER"):
        faulthandler.enable()
    import streams.cli

    sys.argv = [streams.cli.__file__, *request["args"]]
    sys.exit(streams.cli.main())


def _preload() -> None:
    import importlib

    for name in PRELOADED:
        importlib.import_module(name)
    if threading.active_count() != 1:  # a thread does not survive a fork
        raise RuntimeError(f"importing {PRELOADED} started threads: cannot fork")
    if asyncio.get_event_loop_policy()._local._loop is not None:  # type: ignore[attr-defined]
        raise RuntimeError(f"importing {PRELOADED} made an event loop: cannot fork")


def serve(path: str) -> None:
    """Answer start requests on the Unix socket ``path`` until the test process goes."""
    _preload()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    # a child's end wakes the loop below: SIGCHLD writes to ``woken``
    woken, wake = socket.socketpair()
    woken.setblocking(False)
    wake.setblocking(False)
    signal.set_wakeup_fd(wake.fileno())
    signal.signal(signal.SIGCHLD, lambda *_: None)
    print("ready", flush=True)
    conns: list[socket.socket] = []
    owners: dict[int, socket.socket] = {}  # a running copy's pid: who asked for it
    buffers: dict[socket.socket, bytes] = {}
    while True:
        readable, _, _ = select.select([listener, woken, *conns], [], [])
        for sock in readable:
            if sock is woken:
                while True:
                    try:
                        woken.recv(4096)
                    except BlockingIOError:
                        break
                continue
            if sock is listener:
                conn, _ = listener.accept()
                conns.append(conn)
                buffers[conn] = b""
                continue
            data = sock.recv(1 << 20)
            if not data:  # the test is done with it (or gone)
                conns.remove(sock)
                buffers.pop(sock, None)
                sock.close()
                continue
            buffers[sock] += data
            while b"\n" in buffers[sock]:
                line, _, buffers[sock] = buffers[sock].partition(b"\n")
                request = json.loads(line)
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    _child(request, [listener, woken, wake, *conns])  # never returns
                owners[pid] = sock
                sock.sendall(json.dumps({"pid": pid}).encode() + b"\n")
        while owners:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            owner = owners.pop(pid, None)
            if owner is not None and owner in conns:
                code = os.waitstatus_to_exitcode(status)  # -N for signal N, as Popen
                with contextlib.suppress(OSError):
                    owner.sendall(json.dumps({"exit": pid, "code": code}).encode() + b"\n")


# --- the test's side ---------------------------------------------------------------


class ForkedProcess:
    """A ``moments`` command forked by the launcher, used as a ``Popen`` is."""

    def __init__(self, conn: socket.socket, pid: int, pending: bytes = b"") -> None:
        self._conn = conn
        self._pending = pending
        self.pid = pid
        self.returncode: int | None = None

    def _read(self, timeout: float | None) -> None:
        if b"\n" not in self._pending:
            ready, _, _ = select.select([self._conn], [], [], timeout)
            if not ready:
                return
            data = self._conn.recv(4096)
            if not data:
                raise RuntimeError(f"the launcher went away before process {self.pid} ended")
            self._pending += data
        if b"\n" in self._pending:
            self.returncode = int(json.loads(self._pending.partition(b"\n")[0])["code"])
            self._conn.close()

    def poll(self) -> int | None:
        if self.returncode is None:
            self._read(0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            deadline = None if timeout is None else _now() + timeout
            while self.returncode is None:
                left = None if deadline is None else deadline - _now()
                if left is not None and left <= 0:
                    raise subprocess.TimeoutExpired(["moments", str(self.pid)], timeout or 0)
                self._read(left)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def _now() -> float:
    import time

    return time.monotonic()


class Launcher:
    """The launcher process of this test process, started at its first use."""

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="moments-launcher-")
        self.path = os.path.join(self._dir, "socket")
        self.environ = dict(os.environ)
        from streams.services import dies_with_parent

        self.log = Path(self._dir, "launcher.log")
        with self.log.open("wb") as errors:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.integration.forked_starts", self.path],
                cwd=Path(__file__).resolve().parents[2],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=errors,
                preexec_fn=dies_with_parent(),
            )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != b"ready":
            raise RuntimeError(
                f"the launcher did not start (exit {self.proc.wait()}):\n"
                f"{self.log.read_text()[-3000:]}"
            )

    def forkable(self, env: dict[str, str]) -> bool:
        """Whether a copy of the launcher, with ``env`` set, is the same as a new start."""
        keys = set(env) | set(self.environ)
        return all(
            env.get(key) == self.environ.get(key)
            for key in keys
            if not key.startswith("MOMENTS_") and key not in FORKABLE_EXTRA
        )

    def start(self, args: list[str], env: dict[str, str], out: Path, err: Path) -> ForkedProcess:
        """Fork ``moments <args>``, its standard output appended to ``out`` and its
        standard error to ``err`` (the same file, or two)."""
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(self.path)
        request = {"args": args, "env": env, "cwd": os.getcwd(), "out": str(out), "err": str(err)}
        conn.sendall(json.dumps(request).encode() + b"\n")
        reply = b""
        while b"\n" not in reply:
            data = conn.recv(4096)
            if not data:
                raise RuntimeError("the launcher went away while it started a process")
            reply += data
        line, _, rest = reply.partition(b"\n")
        return ForkedProcess(conn, int(json.loads(line)["pid"]), rest)


_launcher: Launcher | None = None


def launcher() -> Launcher:
    """This test process's launcher (started now, at its first use)."""
    global _launcher
    if _launcher is None:
        _launcher = Launcher()
    return _launcher


def _forking(env: dict[str, str]) -> Launcher | None:
    """The launcher, when it can start a process with ``env`` (see the module's notes)."""
    if os.environ.get(ENABLED, "1") == "0":
        return None
    return launcher() if launcher().forkable(env) else None


def start(args: list[str], env: dict[str, str], log: Path) -> Started:
    """Start ``moments <args>`` with ``env``, its output (both streams) into ``log``."""
    launcher = _forking(env)
    if launcher is not None:
        log.write_bytes(b"")
        return launcher.start(args, env, log, log)
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "streams.cli", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def run(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``moments <args>`` to its end, as ``subprocess.run`` does with
    ``capture_output=True, text=True``: killed, and ``TimeoutExpired``, past ``timeout``."""
    launcher = _forking(env)
    if launcher is None:
        return subprocess.run(
            [sys.executable, "-m", "streams.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    with tempfile.TemporaryDirectory(prefix="moments-run-") as folder:
        out, err = Path(folder, "out"), Path(folder, "err")
        proc = launcher.start(args, env, out, err)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        said = [path.read_text() if path.exists() else "" for path in (out, err)]
    return subprocess.CompletedProcess(["moments", *args], code, said[0], said[1])


if __name__ == "__main__":
    serve(sys.argv[1])
