"""streams.worker_stop: a worker told to stop leaves within its limit, with its exit code,
however Faust's services stop; one never told to stop is left alone."""

from __future__ import annotations

import threading

from streams.worker_stop import exit_when_stuck


def test_a_worker_still_there_after_the_limit_leaves_with_its_exit_code() -> None:
    told, left = threading.Event(), threading.Event()
    codes: list[int] = []

    def leave(code: int) -> None:
        codes.append(code)
        left.set()

    watcher = exit_when_stuck(told.is_set, lambda: 2, limit_s=0.05, leave=leave)
    assert not left.wait(0.3) and codes == []  # not told to stop: it stays
    told.set()
    assert left.wait(5) and codes == [2]
    watcher.join(5)
    assert not watcher.is_alive()
