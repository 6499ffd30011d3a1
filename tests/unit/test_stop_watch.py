"""streams.stop_watch: a process still stopping past its bounds says what it waits on
(task names and code places), for the API (in its loop) and the worker (from the thread
that makes it leave)."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from streams.stop_watch import waiting_on, warn_if_still_stopping
from streams.worker_stop import exit_when_stuck


async def close_consumer(closed: asyncio.Event) -> None:
    await closed.wait()


async def stop_hub(closed: asyncio.Event) -> None:
    await close_consumer(closed)


async def test_a_process_still_stopping_names_the_task_and_where_it_waits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    closed = asyncio.Event()
    hub = asyncio.create_task(stop_hub(closed), name="alert-hub")
    loop = asyncio.get_running_loop()
    with caplog.at_level(logging.WARNING, logger="streams.stop_watch"):
        warn_if_still_stopping(loop, 0.05, "Moments API")
        quiet = warn_if_still_stopping(loop, 0.05, "not said")
        quiet.cancel()  # stopped in time: nothing said
        await asyncio.sleep(0.2)
    closed.set()
    await hub
    [said] = [r.getMessage() for r in caplog.records]
    assert said.startswith("Moments API still stopping 0 s after it was told to; waiting on: ")
    assert "alert-hub: stop_hub > close_consumer > Event.wait (locks.py:" in said, said


def test_a_worker_that_leaves_stuck_says_what_its_loop_waited_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.new_event_loop()
    closed = asyncio.Event()
    stuck = loop.create_task(stop_hub(closed), name="faust-consumer-stop")
    runs = threading.Thread(target=loop.run_forever, daemon=True)
    runs.start()
    left = threading.Event()
    try:
        with caplog.at_level(logging.WARNING, logger="streams.worker_stop"):
            exit_when_stuck(lambda: True, limit_s=0.05, leave=lambda code: left.set(),
                            waiting_on=lambda: waiting_on(loop))  # fmt: skip
            assert left.wait(5)
    finally:
        loop.call_soon_threadsafe(stuck.cancel)
        loop.call_soon_threadsafe(loop.stop)
        runs.join(5)
        loop.close()
    [said] = [r.getMessage() for r in caplog.records]
    assert "it was waiting on: faust-consumer-stop: stop_hub > close_consumer" in said, said


async def test_each_step_of_the_apis_stop_is_given_up_past_its_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A consumer closing against a broker that does not answer holds the API's stop no
    longer than its bound, and the log names which step it gave up."""
    from streams.api.server import _stop_within

    async def hangs() -> None:
        await asyncio.Event().wait()

    loop = asyncio.get_running_loop()
    started = loop.time()
    with caplog.at_level(logging.WARNING, logger="streams.api.server"):
        await _stop_within(hangs, 0.05, "the alert fan-out")
    assert loop.time() - started < 1
    assert [r.getMessage() for r in caplog.records] == [
        "the alert fan-out had not stopped 0.05 s on; not waiting longer"
    ]
