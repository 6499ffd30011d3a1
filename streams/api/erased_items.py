"""Items of ``POST /v1/events`` and ``POST /v1/outcomes`` about erased customers are left
out before anything is written to Kafka, so that no record naming a customer is made
after their erasure (the recommendations path sends nothing about them either).

Their customers' tombstones are read in one round trip, each customer once, waiting at
most ``CHECK_WITHIN_S``; the customers this process saw erased in the last day (its own
erasures, and those on the erasures topic) are left out too. While Redis cannot say
(away, or too slow: then it is asked by one request each half second at most, for
``PAUSE_AFTER_FAILURE_S``, see :class:`CheckPause`), those are the only ones left out:
the others are written as before, unchecked and counted so, since the ingest must stay
available and the workers and the learner refuse an erased customer's records all the
same.

>>> async def erased(customers): return [c == "gone" for c in customers]
>>> items = [("c1", "a"), ("gone", "b"), ("c1", "c")]
>>> found = asyncio.run(screen(items, lambda item: item[0], erased, lately=set()))
>>> found.kept, found.places, found.erased, found.unchecked, found.checked
([('c1', 'a'), ('c1', 'c')], [0, 2], [('gone', 'b')], 0, True)
>>> async def away(customers): raise TimeoutError
>>> found = asyncio.run(screen(items, lambda item: item[0], away, lately={"c1"}))
>>> found.kept, found.erased, found.unchecked, found.checked
([('gone', 'b')], [('c1', 'a'), ('c1', 'c')], 1, False)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Container, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

# how long a request waits for the tombstones (a round trip takes a millisecond or so):
# a Redis that does not answer by then is taken as away, not waited out
CHECK_WITHIN_S = 0.25

# after a check that could not be made (Redis slow or away), only a probe now and then is
# asked for this long: a Redis slow to answer, which the outage watch finds up, would
# hold every request for CHECK_WITHIN_S
PAUSE_AFTER_FAILURE_S = 5.0


class CheckPause:
    """Whether tombstones are asked for now: after a check failed, not for ``pause_s``,
    but for one request every ``probe_s``, whose check succeeding ends the pause (one
    slow reply must not let erased customers' items through for long).

    >>> pause = CheckPause()
    >>> pause.wanted(100.0), pause.failed(100.0), pause.wanted(100.2), pause.wanted(100.6)
    (True, None, False, True)
    >>> pause.wanted(100.7), pause.succeeded(), pause.wanted(100.8)
    (False, None, True)
    """

    def __init__(self, pause_s: float = PAUSE_AFTER_FAILURE_S, probe_s: float = 0.5) -> None:
        self._pause_s = pause_s
        self._probe_s = probe_s
        self._until = 0.0
        self._next_probe = 0.0

    def wanted(self, now: float) -> bool:
        if now >= self._until:
            return True
        if now >= self._next_probe:  # a probe: its success ends the pause
            self._next_probe = now + self._probe_s
            return True
        return False

    def failed(self, now: float) -> None:
        self._until = now + self._pause_s
        self._next_probe = now + self._probe_s

    def succeeded(self) -> None:
        self._until = 0.0


T = TypeVar("T")
# customer ids (each once) -> whether each was erased, in one round trip
ErasedCheck = Callable[[Sequence[str]], Awaitable[list[bool]]]


@dataclass(frozen=True)
class Screened(Generic[T]):
    kept: list[T]  # to write, in the order sent
    places: list[int]  # where each of those was among the items (an error names the item)
    erased: list[T]  # left out: their customer was erased
    unchecked: int  # of those kept, written without their tombstone read (Redis could not say)
    checked: bool = False  # Redis was asked, and answered in time


async def screen(
    items: Sequence[T],
    customer_of: Callable[[T], str],
    erased: ErasedCheck | None,
    lately: Container[str],
    within_s: float = CHECK_WITHIN_S,
    kept_anyway: Callable[[T], bool] = lambda item: False,
) -> Screened[T]:
    """``items`` less those whose customer ``erased`` says (or ``lately`` remembers) was
    erased, but for those ``kept_anyway``; ``erased`` None: Redis is known to be away,
    so it is not asked."""
    customers = list(dict.fromkeys(customer_of(item) for item in items))
    gone = {c for c in customers if c in lately}
    checked = False
    if erased is not None:
        try:
            async with asyncio.timeout(within_s):
                answers = await erased(customers)
            gone.update(c for c, was in zip(customers, answers, strict=True) if was)
            checked = True
        except Exception as exc:  # away, out of time, or a reply it could not read
            # by its kind alone: an error's message may quote a key
            log.debug("erasures unchecked (%s); writing as sent", type(exc).__name__)
    places = [i for i, item in enumerate(items)
              if customer_of(item) not in gone or kept_anyway(item)]  # fmt: skip
    left_out = [item for item in items if customer_of(item) in gone and not kept_anyway(item)]
    kept = [items[i] for i in places]
    return Screened(kept, places, left_out, 0 if checked else len(kept), checked)
