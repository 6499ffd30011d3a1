"""Starting ``moments`` commands (``worker``, ``api``, one-shot ones) for the
integration tests, fast.

Each start of ``python -m streams.cli worker`` spends over a second of CPU importing
Faust, aiohttp, redis-py and Moments' modules, and the tests start some 260 of them on
CI's two cores. A *launcher* process, one per test process, imports them once and forks
a copy of itself for each start: the copy then runs ``streams.cli.main()`` as
``python -m streams.cli <command>`` would, with the test's environment, working
directory and log file, and exits as that would (its ``atexit`` handlers, its threads
joined). What runs is the real command; only the imports are shared.

A start is made the usual way (``subprocess.Popen``) when the launcher cannot give one
that is the same: its environment differs from the launcher's in anything but
``MOMENTS_*`` settings (which nothing reads while importing), ``PYTHONFAULTHANDLER``
and ``PYTEST_CURRENT_TEST``, or ``MOMENTS_TEST_FORKED_STARTS=0`` is set; or when a test
asks for it (``anew``). Some tests start ``moments`` commands that way, so the usual
start stays tested: its import, and what a signal does while it imports. A copy has
every module of ``PRELOADED`` imported, and shares the launcher's hash seed.

:class:`ForkedProcess` answers what the tests ask of a ``Popen`` (``pid``, ``poll``,
``wait``, ``returncode``, ``send_signal``, ``terminate``, ``kill``): a signal goes to
the process itself, and its exit status comes from the launcher, its parent. The
launcher ends when its test process closes the launcher's standard input (or ends); the
copies it started go on until their tests stop them.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
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
    os.dup2(devnull, 0)  # in place of the launcher's pipe from the test process
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
    else:
        faulthandler.disable()
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


class _Server:
    """The launcher's loop: a request per line on a connection, its answers on the same
    connection (the copy's pid, then its exit status)."""

    def __init__(self, name: str) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind("\0" + name)  # Linux's abstract names: no file, no length limit
        self.listener.listen(64)
        # a child's end wakes the loop: SIGCHLD writes to ``woken``
        self.woken, self.wake = socket.socketpair()
        self.woken.setblocking(False)
        self.wake.setblocking(False)
        signal.set_wakeup_fd(self.wake.fileno())
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.conns: dict[socket.socket, bytes] = {}  # each with what it sent, unread
        self.owners: dict[int, socket.socket] = {}  # a running copy's pid: who asked

    def run(self) -> None:
        """Until the test process closes the launcher's standard input (or goes)."""
        while True:
            readable, _, _ = select.select([sys.stdin, self.listener, self.woken, *self.conns],
                                           [], [])  # fmt: skip
            for ready in readable:
                if ready is sys.stdin:
                    if not os.read(0, 4096):
                        return
                elif ready is self.woken:
                    while True:
                        try:
                            self.woken.recv(4096)
                        except BlockingIOError:
                            break
                elif ready is self.listener:
                    conn, _ = self.listener.accept()
                    self.conns[conn] = b""
                elif isinstance(ready, socket.socket):
                    self._read(ready)
            self._reap()

    def _drop(self, conn: socket.socket) -> None:
        self.conns.pop(conn, None)
        conn.close()

    def _read(self, conn: socket.socket) -> None:
        try:
            data = conn.recv(1 << 20)
        except OSError:
            data = b""
        if not data:  # the test is done with it (or gone)
            self._drop(conn)
            return
        self.conns[conn] += data
        while conn in self.conns and b"\n" in self.conns[conn]:
            line, _, self.conns[conn] = self.conns[conn].partition(b"\n")
            try:
                pid = self._fork(json.loads(line))
                self.owners[pid] = conn
                conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
            except (OSError, ValueError, KeyError) as exc:  # that start, not the launcher
                with contextlib.suppress(OSError):
                    conn.sendall(json.dumps({"error": repr(exc)}).encode() + b"\n")
                self._drop(conn)

    def _fork(self, request: dict[str, Any]) -> int:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the copy leaves through SystemExit, as python -m streams.cli does
            try:
                _child(request, [self.listener, self.woken, self.wake, *self.conns])
            except SystemExit:
                raise
            except BaseException:  # as the interpreter would: the traceback, then 1
                sys.excepthook(*sys.exc_info())
                raise SystemExit(1) from None
        return pid

    def _reap(self) -> None:
        while self.owners:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return
            owner = self.owners.pop(pid, None)
            if owner is not None and owner in self.conns:
                code = os.waitstatus_to_exitcode(status)  # -N for signal N, as Popen
                with contextlib.suppress(OSError):
                    owner.sendall(json.dumps({"exit": pid, "code": code}).encode() + b"\n")


def serve(name: str, folder: str) -> None:
    """Answer start requests on the abstract Unix socket ``name`` until the test process
    goes; then remove ``folder`` (the launcher's log)."""
    _preload()
    server, server_pid = _Server(name), os.getpid()
    print("ready", flush=True)
    try:
        server.run()
    finally:
        if os.getpid() == server_pid:
            shutil.rmtree(folder, ignore_errors=True)


# --- the test's side ---------------------------------------------------------------


class ForkedProcess:
    """A ``moments`` command forked by the launcher, used as a ``Popen`` is."""

    def __init__(self, conn: socket.socket, pid: int, pending: bytes = b"") -> None:
        self._conn = conn
        self._pending = pending
        self.pid = pid
        self.returncode: int | None = None
        # signals go through a pidfd: never to another process given the pid once the
        # launcher reaped this one
        self._pidfd = os.pidfd_open(pid)

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
            os.close(self._pidfd)

    def poll(self) -> int | None:
        if self.returncode is None:
            self._read(0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.returncode is None:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            self._read(left)
            if self.returncode is None and left == 0.0:
                raise subprocess.TimeoutExpired(["moments", str(self.pid)], timeout or 0)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # ended meanwhile, as Popen's
                signal.pidfd_send_signal(self._pidfd, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class Launcher:
    """The launcher process of this test process. It ends when the test process closes
    its standard input, or ends itself."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="moments-launcher-"))
        self.name = self.folder.name  # of its socket, in Linux's abstract namespace
        self.environ = dict(os.environ)
        self.log = self.folder / "launcher.log"
        with self.log.open("wb") as errors:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.integration.forked_starts",
                    self.name,
                    str(self.folder),
                ],
                cwd=Path(__file__).resolve().parents[2],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
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
        conn.settimeout(30)
        conn.connect("\0" + self.name)
        request = {"args": args, "env": env, "cwd": os.getcwd(), "out": str(out), "err": str(err)}
        conn.sendall(json.dumps(request).encode() + b"\n")
        reply = b""
        while b"\n" not in reply:
            data = conn.recv(4096)
            if not data:
                raise RuntimeError(f"the launcher went away (its log: {self.log})")
            reply += data
        conn.settimeout(None)
        line, _, rest = reply.partition(b"\n")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"the launcher could not start {args}: {answer['error']}")
        return ForkedProcess(conn, int(answer["pid"]), rest)

    def close(self) -> None:
        """End the launcher (the copies it started go on)."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(30)


_launcher: Launcher | None = None
_refused: str | None = None  # why this test process's launcher did not start
_starting = threading.Lock()


def launcher() -> Launcher:
    """This test process's launcher (started now, at its first use)."""
    global _launcher
    with _starting:
        if _launcher is None:
            _launcher = Launcher()
        return _launcher


def _forking(env: dict[str, str], anew: bool) -> Launcher | None:
    """The launcher, when it can start a process with ``env`` (see the module's notes).
    One that does not start is said once, and the tests' processes are started anew."""
    global _refused
    if anew or os.environ.get(ENABLED, "1") == "0" or _refused is not None:
        return None
    try:
        found = launcher()
    except (OSError, RuntimeError) as exc:
        _refused = str(exc)
        warnings.warn(f"processes started anew, slower: {_refused}", stacklevel=3)
        return None
    return found if found.forkable(env) else None


def start(args: list[str], env: dict[str, str], log: Path, anew: bool = False) -> Started:
    """Start ``moments <args>`` with ``env``, its output (both streams) into ``log``;
    started anew (``python -m streams.cli``) where the launcher cannot, or ``anew``."""
    launcher = _forking(env, anew)
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


def run(
    args: list[str], env: dict[str, str], timeout: float, anew: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run ``moments <args>`` to its end, as ``subprocess.run`` does with
    ``capture_output=True, text=True``: killed, and ``TimeoutExpired``, past ``timeout``."""
    launcher = _forking(env, anew)
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
    serve(sys.argv[1], sys.argv[2])
