"""``moments demo`` notices a process of its own that stopped, and says why."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from streams.demo import Child, ChildExited, _wait_ready
from streams.services import stopped_like_ctrl_c, uninterrupted
from streams.services.processes import terminated_like_ctrl_c


def test_a_child_that_exited_is_named_with_its_code_and_the_end_of_its_log(
    tmp_path: Path,
) -> None:
    log = tmp_path / "api.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", "import sys; print('port in use'); sys.exit(3)"],
            stdout=out,
            stderr=out,
        )
        child = Child("API", proc, log)
        proc.wait(30)
    why = child.exited()
    assert why is not None
    assert why.startswith(f"the API exited (code 3); its log: {log}") and "port in use" in why


def test_a_running_child_has_not_exited(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert Child("worker", proc, tmp_path / "worker.log").exited() is None
    finally:
        proc.kill()
        proc.wait(10)


def test_a_child_that_exits_before_it_is_ready_stops_the_demo_with_its_reason(
    tmp_path: Path,
) -> None:
    log = tmp_path / "worker.log"
    log.write_text("no such broker\n")
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(2)"])
    proc.wait(30)
    with pytest.raises(ChildExited, match=r"the worker exited \(code 2\)(.|\n)*no such broker"):
        _wait_ready("http://127.0.0.1:9/readyz", Child("worker", proc, log), timeout=5)


@pytest.mark.parametrize(("code", "stops"), [(0, False), (1, True)])
def test_a_simulator_with_a_set_time_may_end_well_but_not_badly(
    tmp_path: Path, code: int, stops: bool
) -> None:
    proc = subprocess.Popen([sys.executable, "-c", f"import sys; sys.exit({code})"])
    proc.wait(30)
    child = Child("simulator", proc, tmp_path / "simulator.log", may_finish=True)
    assert (child.exited() is not None) is stops


def test_sigterm_and_sighup_stop_like_ctrl_c_and_a_cleanup_is_not_interrupted() -> None:
    before = signal.getsignal(signal.SIGTERM)
    for sent in (signal.SIGTERM, signal.SIGHUP):
        with pytest.raises(KeyboardInterrupt), stopped_like_ctrl_c():
            os.kill(os.getpid(), sent)
            time.sleep(5)  # the signal ends the wait
    assert signal.getsignal(signal.SIGTERM) == before
    with uninterrupted():
        os.kill(os.getpid(), signal.SIGINT)  # ignored: no KeyboardInterrupt
        time.sleep(0.05)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_sigint_stops_like_ctrl_c_in_a_process_started_ignoring_it() -> None:
    """Started in the background of a script (``cmd &``), a process inherits SIGINT
    ignored: ``kill -INT`` did nothing to the demo."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with pytest.raises(KeyboardInterrupt), stopped_like_ctrl_c():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # the signal ends the wait
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # given back as it was
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_stop_signal_under_asyncio_cancels_the_main_task_as_ctrl_c_does() -> None:
    """SIGTERM raised KeyboardInterrupt in whichever task ran (a Kafka client's, which
    logged it as never retrieved); Ctrl-C's own handler cancels the main task instead."""
    seen: list[str] = []

    async def main() -> None:
        async def busy() -> None:  # a library's task, running when the signal comes
            try:
                while True:
                    for _ in range(20_000):  # Python, where a signal's handler runs
                        pass
                    await asyncio.sleep(0)
            except BaseException as exc:
                seen.append(type(exc).__name__)
                raise

        task = asyncio.create_task(busy())
        # sent from elsewhere, as kill does: it comes while the busy task runs
        threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGTERM)).start()
        try:
            await asyncio.sleep(5)
        finally:
            seen.append("main stopped")
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    with pytest.raises(KeyboardInterrupt), stopped_like_ctrl_c():
        asyncio.run(main())
    assert seen == ["main stopped", "CancelledError"]


def test_sigterm_while_a_worker_starts_ends_its_loop_not_the_task_it_lands_in() -> None:
    """A worker starts in loop.run_until_complete (Ctrl-C's handler is the default one):
    a SIGTERM that landed while a task ran (a Redis client's, as the start waited for
    Redis) raised KeyboardInterrupt in that task, which printed it as never retrieved."""
    seen: list[object] = []
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(lambda _, context: seen.append(context))

    async def redis_client() -> None:  # a library's task, running when the signal comes
        await asyncio.sleep(0)
        os.kill(os.getpid(), signal.SIGTERM)  # (its handler runs before kill returns)
        await asyncio.sleep(5)

    tasks: list[asyncio.Task[None]] = []

    async def start() -> None:
        tasks.append(asyncio.ensure_future(redis_client()))
        await tasks[0]

    main = loop.create_task(start())
    try:
        with pytest.raises(KeyboardInterrupt), terminated_like_ctrl_c():
            loop.run_until_complete(main)
        assert not main.done() and not tasks[0].done(), tasks
        main.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(main)
    finally:
        loop.close()
    assert seen == []


def test_a_stop_signal_as_a_loops_last_run_ends_is_not_lost() -> None:
    """Under ``stopped_like_ctrl_c`` (the demo, bench), a SIGTERM that came as a loop's
    run ended, the loop not run again, was left queued on it: the demo went on."""

    async def last_step() -> None:  # the signal comes once the loop is told to stop
        task = asyncio.current_task()
        assert task is not None
        task.add_done_callback(lambda _: os.kill(os.getpid(), signal.SIGTERM))

    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(KeyboardInterrupt), stopped_like_ctrl_c():
            loop.run_until_complete(last_step())
            time.sleep(5)  # (lost: the process went on)
    finally:
        loop.close()


def test_a_stop_signal_stops_a_process_started_with_sigint_blocked() -> None:
    """Some supervisors start processes with SIGINT blocked: sent on as SIGINT, SIGTERM
    stayed pending and the demo ran on until its time was up."""
    code = (
        "import time\n"
        "from streams.services import stopped_like_ctrl_c\n"
        "try:\n"
        "    with stopped_like_ctrl_c():\n"
        "        print('ready', flush=True)\n"
        "        time.sleep(20)\n"
        "    print('slept')\n"
        "except KeyboardInterrupt:\n"
        "    print('stopped')\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}),
    )  # fmt: skip
    assert child.stdout is not None and child.stdout.readline() == "ready\n"
    began = time.monotonic()
    child.send_signal(signal.SIGTERM)
    out, _ = child.communicate(timeout=30)
    assert out == "stopped\n" and time.monotonic() - began < 5
