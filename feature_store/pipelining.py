"""Round trips shared by concurrent callers (automatic pipelining) over redis-py's
pipelines: how the feature store talks to a Redis Cluster (on a single server,
:mod:`feature_store.transport` does the same on one connection, without waiting).

While one round trip to Redis is in flight, commands submitted by other tasks wait and
then all go together in the next one, in the order they were submitted. Under load,
many callers share one round trip (fewer system calls and wake-ups on both sides);
a lone caller waits for nothing but its own round trip.

>>> import asyncio
>>> sent = []
>>> async def send(commands):
...     sent.append(len(commands))
...     return [c[1] for c in commands]
>>> async def main():
...     shared = SharedRoundTrips(send)
...     return await asyncio.gather(shared.submit([("GET", 1)]), shared.submit([("GET", 2)]))
>>> asyncio.run(main()), sent
([[1], [2]], [2])
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

Command = tuple[Any, ...]
Send = Callable[[list[Command]], Awaitable[list[Any]]]


class SharedRoundTrips:
    """Submit commands; get their replies; share round trips with concurrent callers."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._queue: list[tuple[Sequence[Command], asyncio.Future[list[Any]]]] = []
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, commands: Sequence[Command]) -> list[Any]:
        """The replies to ``commands`` (errors as values, as a pipeline returns them);
        raises what the round trip raised when it failed as a whole."""
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[list[Any]] = loop.create_future()
        self._queue.append((commands, reply))
        if self._worker is None:
            # started on the next turn, so callers of this turn share the first trip
            self._worker = loop.create_task(self._run())
        return await reply

    async def _run(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                flat = [command for commands, _ in batch for command in commands]
                try:
                    replies = await self._send(flat)
                except BaseException as exc:
                    for _, reply in batch:
                        if not reply.done():
                            reply.set_exception(exc)
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    continue
                start = 0
                for commands, reply in batch:
                    if not reply.done():  # its caller may have given up
                        reply.set_result(replies[start : start + len(commands)])
                    start += len(commands)
        finally:
            self._worker = None
