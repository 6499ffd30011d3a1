"""A worker told to stop exits within :data:`STOP_LIMIT_S`, however its services stop.

Faust stops its services one by one, and one of them can hang: with Kafka unreachable,
the consumer's thread fails to close and Faust waits a minute for it, past a pod's grace
period (after which it is killed without a word). Nothing is lost by leaving then: the
batches the worker had not done are held, not committed (see
:mod:`agents.touchpoint_agent`), so the next worker reads them; a batch done but not yet
committed is read again, and applied and decided once all the same.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

# above the few seconds a worker told to stop still tries to confirm a batch it has sent
# (agents.batch_retries), below the pods' grace period (deploy/k8s/base/worker-deployment.yaml)
STOP_LIMIT_S = 8.0
_LOOK_EVERY_S = 0.2


def exit_when_stuck(
    told_to_stop: Callable[[], bool],
    exit_code: Callable[[], int] = lambda: 0,
    limit_s: float = STOP_LIMIT_S,
    leave: Callable[[int], object] = os._exit,
    waiting_on: Callable[[], list[str]] = list,
) -> threading.Thread:
    """Watch, in a thread of its own, for the worker to be told to stop; if the process is
    still there ``limit_s`` seconds later, say so, and what it was ``waiting_on`` (its
    event loop's tasks: :func:`streams.stop_watch.waiting_on`), and ``leave`` with
    ``exit_code()``."""

    def watch() -> None:
        while not told_to_stop():
            time.sleep(_LOOK_EVERY_S)
        time.sleep(limit_s)
        log.warning("worker still stopping %.0f s after it was told to (is Kafka or Redis "
                    "unreachable?): it exits now; what it had not done is read again by "
                    "the next worker; it was waiting on: %s",
                    limit_s, "; ".join(waiting_on()) or "nothing")  # fmt: skip
        for handler in logging.getLogger().handlers:
            handler.flush()
        leave(exit_code())

    watcher = threading.Thread(target=watch, name="moments-stop-limit", daemon=True)
    watcher.start()
    return watcher
