"""The event loop Moments' processes run on: uvloop (libuv, written in C) where it is
installed, else the standard library's.

The API server and the stream workers spend much of their time in the loop itself
(waking on sockets, writing, scheduling callbacks), which uvloop does in C. Chosen with
``MOMENTS_EVENT_LOOP``: ``auto`` (the default), ``uvloop`` or ``asyncio``.

>>> loop = new_event_loop("asyncio")
>>> type(loop).__module__
'asyncio.unix_events'
>>> loop.close()
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

CHOICES = ("auto", "uvloop", "asyncio")


class EventLoopError(RuntimeError):
    """The chosen event loop cannot be used here."""


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """What makes a new loop of the chosen kind."""
    if choice not in CHOICES:
        raise EventLoopError(f"MOMENTS_EVENT_LOOP must be one of {', '.join(CHOICES)}")
    if choice == "asyncio":
        return asyncio.new_event_loop
    try:
        import uvloop
    except ImportError as exc:
        if choice == "auto":
            return asyncio.new_event_loop
        raise EventLoopError(
            "MOMENTS_EVENT_LOOP=uvloop, but uvloop is not installed here "
            "(pip install uvloop; it does not run on Windows)"
        ) from exc
    return uvloop.new_event_loop


def new_event_loop(choice: str) -> asyncio.AbstractEventLoop:
    """A new loop of the chosen kind."""
    return loop_factory(choice)()


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop`` or ``asyncio``: what a process says it runs on."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
