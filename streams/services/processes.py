"""Local service processes: free ports, waiting for readiness, stopping cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import fcntl
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ServiceError(RuntimeError):
    """A service could not be found or started; the message says what to do."""


def cache_dir() -> Path:
    base = os.environ.get("MOMENTS_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "moments"
    )
    return Path(base)


# one per user: another user's file in the shared temp folder cannot be opened (Linux's
# protected_regular), which left claims unmade for good
PORT_CLAIMS = Path(tempfile.gettempdir()) / f"moments-port-claims-{os.getuid()}.json"
PORT_CLAIM_S = 120.0  # long enough for the slowest service to bind the port it was given


def free_port(claims: Path = PORT_CLAIMS) -> int:
    """A loopback port that is free now (the kernel picks one from its ephemeral range).

    A port is free until its server binds it, seconds later; another process on the
    machine (the tests run in two) could be handed it meanwhile. Each port handed out is
    claimed for :data:`PORT_CLAIM_S` in a small file shared under a lock, and ports
    another process claimed are passed over.
    """
    with contextlib.ExitStack() as held:
        taken: dict[int, float] = {}
        try:
            file = held.enter_context(claims.open("a+"))
            fcntl.flock(file, fcntl.LOCK_EX)  # released when the file closes
            file.seek(0)
        except OSError:  # the kernel's word alone
            file = None
        # garbled (a process stopped mid-write): none taken, and the file written anew
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            if file is not None:
                taken = {int(p): float(t) for p, t in json.loads(file.read() or "{}").items()}
        now = time.time()
        taken = {p: t for p, t in taken.items() if now - t < PORT_CLAIM_S}
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", 0))
                port = int(sock.getsockname()[1])
            if port not in taken:
                break
        if file is not None:
            taken[port] = now
            file.seek(0)
            file.truncate()
            file.write(json.dumps(taken))
        return port


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


_PR_SET_PDEATHSIG = 1  # prctl(2)


def _libc() -> Any:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    except OSError:
        return None


def dies_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` for ``subprocess.Popen``: the child is sent SIGTERM when this
    process ends, even by SIGKILL, so that no service it started is left running.

    Linux only (``prctl(PR_SET_PDEATHSIG)``); ``None`` elsewhere, and off the main
    thread, since the signal follows the thread that started the child, not the process.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not (
        threading.main_thread()
    ):
        return None
    libc = _libc()
    if libc is None or not hasattr(libc, "prctl"):
        return None
    parent = os.getpid()

    def arm() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os.kill(os.getpid(), signal.SIGTERM)

    return arm


def _as_ctrl_c(signum: int, frame: Any) -> None:
    """Stop as Ctrl-C does: SIGINT's own handler takes it, which under ``asyncio.run``
    cancels the main task (raised here, the interruption landed in whichever task ran,
    a Kafka client's, which logged it as never retrieved). Called, not sent: a process
    started with SIGINT blocked would never see it."""
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
    else:  # ignored or default: never end at once, skipping the cleanup
        raise KeyboardInterrupt(signal.Signals(signum).name)


def _as_ctrl_c_while_starting(signum: int, frame: Any) -> None:
    """:func:`_as_ctrl_c` for a worker or an API starting: their loops run without
    ``asyncio.run`` (Ctrl-C's handler is the default one), so a stop raised in a task's
    step (a Redis client's, as the start waits for Redis) was that task's failure, and
    printed as never retrieved. It is raised from the loop's next callback: the loop's
    run ends. (Only while starting: each run of their loop is followed by another, which
    runs the callback if the run the signal came in had just ended.)"""
    handler = signal.getsignal(signal.SIGINT)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is None or (callable(handler) and handler is not signal.default_int_handler):
        _as_ctrl_c(signum, frame)
        return
    interruption = KeyboardInterrupt(signal.Signals(signum).name)
    loop.call_soon_threadsafe(_raise, interruption)  # (threadsafe: wakes its select)


def _raise(interruption: BaseException) -> None:
    raise interruption


@contextlib.contextmanager
def _handled(signals: tuple[signal.Signals, ...], handler: Any) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():  # only it may set them
        yield
        return
    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        yield
    finally:
        for s, was in previous.items():
            signal.signal(s, was)


@contextlib.contextmanager
def stopped_like_ctrl_c() -> Iterator[None]:
    """SIGTERM and SIGHUP stop the ``with`` block as Ctrl-C does (the default ends the
    process at once, skipping the cleanup that stops the services it started, which run
    in sessions of their own and would be left behind). So does SIGINT, even where the
    process was started ignoring it (in the background of a script, ``cmd &``)."""
    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    with (
        _handled((signal.SIGINT,) if ignored else (), signal.default_int_handler),
        _handled((signal.SIGTERM, signal.SIGHUP), _as_ctrl_c),
    ):
        yield


@contextlib.contextmanager
def terminated_like_ctrl_c() -> Iterator[None]:
    """SIGTERM stops the ``with`` block as Ctrl-C does (exit 130), for a worker or API
    process starting up, before its own handlers take the signals over: by default an
    orchestrator's stop then (a rollout while Redis is away) ended it at once, with
    143 and no word. SIGHUP is left as it was."""
    with _handled((signal.SIGTERM,), _as_ctrl_c_while_starting):
        yield


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP are ignored in the ``with`` block: a cleanup that has
    begun runs to its end (a second Ctrl-C would otherwise leave the rest running)."""
    with _handled((signal.SIGINT, signal.SIGTERM, signal.SIGHUP), signal.SIG_IGN):
        yield
