"""What a process told to stop still waits on, said in its log.

A process that has not stopped some seconds after it was told to (a Kafka client closing
against a broker that does not answer, a Redis call that hangs) names, in one warning,
the tasks it still waits on and where each waits: whoever reads why a pod was killed at
the end of its grace period has the place. Task names and code locations only: nothing
a customer sent.

>>> async def demo() -> list[str]:
...     async def flush() -> None:
...         await asyncio.Event().wait()
...     async def publish() -> None:
...         await flush()
...     task = asyncio.create_task(publish(), name="publisher")
...     await asyncio.sleep(0)
...     found = waiting_on(asyncio.get_running_loop())
...     task.cancel()
...     return found
>>> [line.split(" (")[0] for line in asyncio.run(demo())]
['publisher: publish > flush > Event.wait']
"""

from __future__ import annotations

import asyncio
import logging
import types
from pathlib import Path

log = logging.getLogger(__name__)

# the awaits followed from a task's coroutine inward, at most
DEEPEST = 12


def waiting_on(loop: asyncio.AbstractEventLoop) -> list[str]:
    """Each unfinished task of ``loop`` but the one asking, as "name: the coroutines it
    awaits in, outermost first (where the innermost waits)"; safe to call from another
    thread (a task that changes meanwhile is told as it was, or left out)."""
    try:
        tasks = asyncio.all_tasks(loop)
    except RuntimeError:  # the loop's tasks changed while read from another thread
        return []
    asking = _current(loop)
    found = []
    for task in sorted(tasks, key=lambda t: t.get_name()):
        if task is asking or task.done():
            continue
        try:
            found.append(f"{task.get_name()}: {_awaits(task.get_coro())}")
        except Exception:  # a frame gone meanwhile: told by name alone
            found.append(task.get_name())
    return found


def _current(loop: asyncio.AbstractEventLoop) -> asyncio.Task[object] | None:
    try:
        return asyncio.current_task(loop)
    except RuntimeError:  # (no loop running in this thread)
        return None


def _awaits(coro: object) -> str:
    """The chain of coroutines ``coro`` awaits in, and the innermost one's place."""
    names: list[str] = []
    place = ""
    current = coro
    for _ in range(DEEPEST):
        frame = getattr(current, "cr_frame", None) or getattr(current, "gi_frame", None)
        if not isinstance(frame, types.FrameType):
            break
        names.append(frame.f_code.co_qualname.rpartition("<locals>.")[2])
        place = f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno}"
        current = getattr(current, "cr_await", None) or getattr(current, "gi_yieldfrom", None)
    return f"{' > '.join(names) or type(coro).__name__} ({place or 'no frame'})"


def warn_if_still_stopping(
    loop: asyncio.AbstractEventLoop, after_s: float, process: str
) -> asyncio.TimerHandle:
    """Once ``after_s`` seconds have passed (the handle cancels it), warn that
    ``process`` is still stopping, naming what it waits on."""

    def warn() -> None:
        log.warning("%s still stopping %.0f s after it was told to; waiting on: %s",
                    process, after_s, "; ".join(waiting_on(loop)) or "nothing")  # fmt: skip

    return loop.call_later(after_s, warn)
