"""How long a client may take to send a request's head (``MOMENTS_API_HEAD_TIMEOUT_S``),
apart from how long a connection may stay idle between requests
(``MOMENTS_API_IDLE_TIMEOUT_S``).

A connection that had sent part of a head, or nothing at all, was closed only at the idle
timeout, 75 s, which must stay above the idle timeout of the load balancer in front: no
key needed, a client opening some 5 connections a second held every connection the
process may hold (:mod:`streams.api.connection_cap`), and every other client was answered
503 ``too_many_connections``. A head is now due within this deadline: from the opening
of the connection for its first request, and from the first byte of each later one on a
connection kept alive (waiting for it with nothing sent is idling). A connection whose
head is overdue is closed, unanswered, as one idle for too long is.

>>> import asyncio
>>> async def overdue() -> list[str]:
...     closed: list[str] = []
...     deadline = HeadDeadline(asyncio.get_running_loop(), 0.01, lambda: closed.append("x"))
...     deadline.start(); deadline.start()  # one running: not started again
...     await asyncio.sleep(0.05)
...     deadline.start(); deadline.stop()  # the head came in time
...     await asyncio.sleep(0.05)
...     return closed
>>> asyncio.run(overdue())
['x']
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class HeadDeadline:
    """One connection's deadline for the head it is receiving: ``on_overdue`` is called
    ``seconds`` after :meth:`start`, unless :meth:`stop` came first."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, seconds: float, on_overdue: Callable[[], None]
    ) -> None:
        self._loop, self._seconds, self._on_overdue = loop, seconds, on_overdue
        self._handle: asyncio.TimerHandle | None = None

    @property
    def running(self) -> bool:
        return self._handle is not None

    def start(self) -> None:
        """A head is awaited from now (nothing new while one is awaited already)."""
        if self._handle is None and self._seconds > 0:
            self._handle = self._loop.call_later(self._seconds, self._overdue)

    def stop(self) -> None:
        """The head came (or the connection went)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _overdue(self) -> None:
        self._handle = None
        self._on_overdue()
