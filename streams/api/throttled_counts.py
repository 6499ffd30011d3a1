"""Something that can happen by the thousand a second (a request the server cannot read,
a decision given up), told to the log as counts by reason: the first at once, then what
follows in one report per period while it lasts, never a line each (one line each wrote
21,822 identical warnings in an 8 s Redis stall). The report says how many, never who.

>>> said, period_over = [], []
>>> tell = lambda counts, at_once: said.append(dict(counts))
>>> given_up = ThrottledCounts(tell, 5.0, lambda s, then: period_over.append(then))
>>> for why in ["full", "full", "refused", "full"]:
...     given_up.add(why)
>>> said  # the first, at once
[{'full': 1}]
>>> period_over.pop()(); said  # the rest, 5 s later
[{'full': 1}, {'full': 2, 'refused': 1}]
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Hashable
from typing import Generic, Protocol, TypeVar

Reason = TypeVar("Reason", bound=Hashable)
# tells the counts by reason not told yet; ``at_once``: the first in a while, alone
Tell = Callable[[Counter[Reason], bool], None]


class Timer(Protocol):
    """Calls ``callback`` in ``delay_s`` (as ``loop.call_later`` does)."""

    def __call__(self, delay_s: float, callback: Callable[[], None], /) -> object: ...


def loop_timer(delay_s: float, callback: Callable[[], None]) -> object:
    """The running event loop's timer."""
    return asyncio.get_running_loop().call_later(delay_s, callback)


class ThrottledCounts(Generic[Reason]):
    """Counts by reason, told by ``tell``: the first at once, then those that follow at
    most once per ``every_s`` while they keep coming; after a quiet period, the next is
    told at once again."""

    def __init__(self, tell: Tell[Reason], every_s: float, timer: Timer = loop_timer) -> None:
        self._tell = tell
        self._every_s = every_s
        self._timer = timer
        self._untold: Counter[Reason] = Counter()
        self._waiting = False  # a report was made less than ``every_s`` ago

    def add(self, reason: Reason, count: int = 1) -> None:
        """``count`` more for ``reason``: told now if nothing was told lately."""
        self._untold[reason] += count
        if not self._waiting:
            self._report(at_once=True)

    def flush(self) -> None:
        """Tell now what is not told yet (the process's last words)."""
        if self._untold:
            self._tell(self._untold.copy(), False)
            self._untold.clear()

    def _report(self, at_once: bool) -> None:
        self._tell(self._untold.copy(), at_once)
        self._untold.clear()
        self._waiting = True
        self._timer(self._every_s, self._period_over)

    def _period_over(self) -> None:
        self._waiting = False
        if self._untold:  # still coming: their report, and a period's wait again
            self._report(at_once=False)


def line_per_reason(log: logging.Logger, message: str) -> Tell[tuple[str, ...]]:
    """Tells each reason in a warning line of its own: ``message`` % (count, *reason).

    >>> tell = line_per_reason(logging.getLogger("doctest"), "%d decisions lost: %s")
    >>> tell(Counter({("Kafka away",): 3}), False)  # logs "3 decisions lost: Kafka away"
    """

    def tell(counts: Counter[tuple[str, ...]], at_once: bool) -> None:
        for reason, count in counts.items():
            log.warning(message, count, *reason)

    return tell
