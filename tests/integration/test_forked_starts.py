"""The launcher's copies (``forked_starts``) end and answer as ``python -m streams.cli``
started anew does: the same exit status, the same output, the same signals."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from streams.services import free_port
from tests.integration import forked_starts
from tests.integration.conftest import Pipeline
from tests.integration.forked_starts import ForkedProcess

pytestmark = pytest.mark.integration


def _both(
    tmp_path: Path, args: list[str], env: dict[str, str], new_env: dict[str, str] | None = None
) -> tuple[ForkedProcess, Path, subprocess.Popen[bytes], Path]:
    """``moments <args>`` forked by the launcher with ``env``, and started anew (with
    ``new_env``, when given)."""
    forked_log, new_log = tmp_path / "forked.log", tmp_path / "new.log"
    forked = forked_starts.launcher().start(args, env, forked_log, forked_log)
    with new_log.open("wb") as out:
        new = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", *args],
            env=env if new_env is None else new_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return forked, forked_log, new, new_log


def test_a_refused_setting_ends_both_alike(tmp_path: Path) -> None:
    env = {**os.environ, "MOMENTS_WEB_PORT": "not-a-port", "MOMENTS_LOG_FORMAT": "text"}
    forked, forked_log, new, new_log = _both(tmp_path, ["worker"], env)
    assert forked.wait(30) == new.wait(30) == 2
    assert forked.returncode == 2
    said = forked_log.read_text()
    assert "MOMENTS_WEB_PORT" in said
    assert said == new_log.read_text()


def test_no_kafka_ends_both_alike(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "MOMENTS_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",  # nothing listens there
        "MOMENTS_WEB_PORT": str(free_port()),
        "MOMENTS_DATA_DIR": str(tmp_path / "data"),
    }
    forked, forked_log, new, new_log = _both(tmp_path, ["worker"], env)
    assert forked.wait(60) == new.wait(60) == 3
    assert "Kafka" in forked_log.read_text() and "Kafka" in new_log.read_text()


def test_a_copy_stopped_or_killed_ends_as_a_new_process_does(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        ports = free_port(), free_port()
        forked, _, new, _ = _both(
            tmp_path, ["worker"], pipeline.env(ports[0]), pipeline.env(ports[1])
        )
        try:
            for port in ports:  # both up: each answers on its own port
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    with contextlib.suppress(OSError):
                        urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5)
                        break
                    time.sleep(0.1)
            assert forked.poll() is None and new.poll() is None
            with pytest.raises(subprocess.TimeoutExpired):
                forked.wait(0.2)
            forked.send_signal(sig)
            new.send_signal(sig)
            assert forked.wait(60) == new.wait(60) == (0 if sig == signal.SIGTERM else -sig)
            forked.send_signal(signal.SIGTERM)  # ended: nothing is sent, as with Popen
        finally:
            for proc in (forked, new):
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()


def test_a_run_captures_both_streams_and_the_exit_status() -> None:
    env = {**os.environ, "MOMENTS_WEB_PORT": "not-a-port"}
    launcher = forked_starts.launcher()
    assert launcher.forkable(env)
    ran = forked_starts.run(["dead-letters"], env, timeout=30)
    anew = subprocess.run(
        [sys.executable, "-m", "streams.cli", "dead-letters"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (ran.returncode, ran.stdout, ran.stderr) == (anew.returncode, anew.stdout, anew.stderr)
    assert ran.returncode == 2 and "MOMENTS_WEB_PORT" in ran.stderr


def test_another_environment_than_the_launchers_is_started_anew(tmp_path: Path) -> None:
    env = {**os.environ, "MOMENTS_WEB_PORT": "not-a-port", "PYTHONHASHSEED": "7"}
    assert not forked_starts.launcher().forkable(env)
    started = forked_starts.start(["worker"], env, tmp_path / "new.log")
    assert isinstance(started, subprocess.Popen)
    assert started.wait(30) == 2


@pytest.mark.skipif(
    os.environ.get(forked_starts.ENABLED) == "0", reason="MOMENTS_TEST_FORKED_STARTS=0"
)
def test_a_pipelines_processes_are_forked(pipeline: Pipeline) -> None:
    # pytest sets PYTEST_CURRENT_TEST for each test: a start must not be refused for it
    assert isinstance(pipeline.start_api().proc, ForkedProcess)


def test_a_launcher_ends_when_its_test_process_lets_go(tmp_path: Path) -> None:
    launcher = forked_starts.Launcher()
    folder = launcher.folder
    assert folder.is_dir()
    env = {**os.environ, "MOMENTS_WEB_PORT": "not-a-port"}
    assert launcher.start(["worker"], env, tmp_path / "a.log", tmp_path / "a.log").wait(30) == 2
    launcher.close()  # its standard input closed, as when the test process ends
    assert launcher.proc.returncode == 0
    assert not folder.exists()


def test_a_launcher_that_does_not_start_leaves_the_starts_to_popen(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def refused() -> forked_starts.Launcher:
        raise RuntimeError("the launcher did not start (exit 1)")

    monkeypatch.setattr(forked_starts, "_launcher", None)
    monkeypatch.setattr(forked_starts, "_refused", None)
    monkeypatch.setattr(forked_starts, "Launcher", refused)
    env = {**os.environ, "MOMENTS_WEB_PORT": "not-a-port"}
    with pytest.warns(UserWarning, match="started anew, slower: the launcher did not start"):
        first = forked_starts.start(["worker"], env, tmp_path / "first.log")
    second = forked_starts.start(["worker"], env, tmp_path / "second.log")  # said once
    assert isinstance(first, subprocess.Popen) and isinstance(second, subprocess.Popen)
    assert first.wait(30) == second.wait(30) == 2
