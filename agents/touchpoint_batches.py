"""Touchpoints in batches from a Faust stream, with no timer while none comes.

Faust's ``take_events`` looks at its buffer every ``within`` whether or not anything
came: about 500 times a second at 2 ms, a few percent of a core for an idle worker.
:func:`take_batches` waits for a batch's first event with no timeout, then at most
``within`` for the rest. Otherwise it keeps ``take_events``' promises, which the
touchpoint agent relies on: a batch holds at most ``max_`` events; an event that comes
while a batch is handed out goes to the next one; and the events of a batch are acked
once the caller is done with it, whatever became of it (the caller may have raised, or
closed the batches).

It fills its batch as ``take_events`` does: a processor on the stream adds each event,
and the stream is drained in the background (Faust's passive mode). Those two hooks,
``_enable_passive`` and ``_processors``, are Faust's own; the tests run this against a
real Faust stream so that a Faust that changes them fails there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from typing import Any

log = logging.getLogger(__name__)


class _Buffer:
    """The events of the batch being filled, and who waits for what."""

    def __init__(self, stream: Any, max_: int) -> None:
        self._stream = stream
        self._max = max_
        self.events: list[Any] = []
        self.started = asyncio.Event()  # the batch has its first event
        self.full = asyncio.Event()  # it has ``max_``
        self.open = asyncio.Event()  # events may be added (not full, not handed out)
        self.open.set()

    async def add(self, value: Any) -> Any:
        """The stream's processor: adds the event under way, after waiting for room. A
        fault here crashes the stream (logged), which ends its batches: the agent does
        not wait on for events that never come."""
        try:
            if not self.open.is_set():
                await self.open.wait()
            event = self._stream.current_event
            if event is None:
                raise RuntimeError("a batch found no current event on its stream")
            self.events.append(event)
            self.started.set()
            if len(self.events) >= self._max:
                self.open.clear()
                self.full.set()
        except Exception as exc:  # cancellation goes on
            log.exception("touchpoints could not be batched")
            await self._stream.crash(exc)
        return value

    def hand_out(self) -> list[Any]:
        """The batch as it is; nothing is added until :meth:`reopen`."""
        self.open.clear()
        batch, self.events = self.events, []
        return batch

    def reopen(self) -> None:
        self.started.clear()
        self.full.clear()
        self.open.set()


async def take_batches(stream: Any, max_: int, within: float) -> AsyncGenerator[list[Any], None]:
    """Batches of at most ``max_`` events of ``stream``, each handed out ``within``
    seconds after its first event came, or as soon as it is full; the stream's events
    are acked by this, after the caller is done with their batch."""
    if max_ < 1 or within <= 0:
        raise ValueError(f"a batch needs max_ >= 1 and within > 0, not {max_} and {within}")
    buffer = _Buffer(stream, max_)
    acks_before = stream.enable_acks
    stream.enable_acks = False  # acked here, once their batch is done
    stream.add_processor(buffer.add)
    stream._enable_passive(stream.channel.__aiter__())
    try:
        while not stream.should_stop:
            await stream.wait_for_stopped(buffer.started)  # no timer while none comes
            if not buffer.full.is_set():
                await stream.wait_for_stopped(buffer.full, timeout=within)
            if not buffer.events:
                continue
            batch = buffer.hand_out()
            try:
                yield batch
            finally:
                for event in batch:
                    await stream.ack(event)
                buffer.reopen()
    finally:
        stream.enable_acks = acks_before
        stream._processors.remove(buffer.add)
