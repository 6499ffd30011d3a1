"""Fallback decisions wait here until Redis says their customers are not erased (and so
do decisions answered whose write failed: it cannot say whether the store refused them).

A fallback is answered without reading Redis (it was slow or down), so it cannot know
whether its customer was erased; the API process remembers only the last day's
erasures. Its decision is published once a check says the customer is not erased (the
API's check records the decision, which the store refuses for an erased customer), and
never for one who is. While Redis cannot answer, the decisions wait, the
checks retried with a growing pause; one that waits longer than ``hold_s`` (or is pushed
out by ``limit`` newer ones of its kind) is not published, and counted as such. The
decisions answered with offers whose write failed wait apart from the fallbacks, which
come by the thousand while Redis is away: those never push them out. A few hundred are
checked per round trip (up to a quarter of those waiting), so that the process goes on
answering while thousands are checked; those being checked are out of the queue, so
that none is pushed out once the check has recorded it.

The customer of a decision given up unchecked may be erased, and what else the process
holds about them (the fallbacks' contacts) would keep their id: their id alone is kept
(``unchecked``, at most ``unchecked_limit``) until Redis says whether they are erased, those
erased are forgotten (``found_erased``) as when a decision's check finds them so, and
those pushed out of it, or with no way to ask, are forgotten unasked.

>>> async def nobody_erased(waiting): return [False] * len(waiting)
>>> sent = []
>>> async def demo():
...     outbox = FallbackOutbox(nobody_erased, sent.extend, dropped=print)
...     outbox.add("c1", b"decision-1")
...     await outbox.drain()
>>> asyncio.run(demo()); sent
[(b'c1', b'decision-1')]
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from streams.api.throttled_counts import ThrottledCounts, line_per_reason

log = logging.getLogger(__name__)

Record = tuple[bytes, bytes]  # the decision's Kafka key (the customer id) and value
# how often the decisions given up are logged, counted by reason: one line each would
# flood the log (and the loop) while new fallbacks push the oldest out, thousands a second
LOG_EVERY_S = 5.0
# the decisions waiting, as (customer id, decision JSON) -> whether each customer is erased
ErasedCheck = Callable[[Sequence[tuple[str, bytes]]], Awaitable[list[bool]]]
# customer ids -> whether each is erased (asks, records nothing)
WhoErased = Callable[[Sequence[str]], Awaitable[list[bool]]]
# checked in one round trip: at least this many, up to a quarter of those waiting (ten
# thousand at once held the event loop about 0.3 s; 500 at a time fell behind fallbacks
# coming by the thousand a second into an API short of CPU, each round trip slowed)
CHECK_AT_ONCE = 500
CHECK_PARTS = 4
# customers of decisions given up unchecked kept to ask of, at most: as many as the
# fallbacks' contacts hold answers (an entry of some 100 bytes beside the id they hold)
UNCHECKED = 100_000
Waiting = tuple[int, float, str, Record]  # (number, since, customer id, record)
FALLBACKS = "fallback decisions"
SHOWN = "decisions answered with offers (their write failed)"


class FallbackOutbox:
    def __init__(
        self,
        erased: ErasedCheck,
        publish: Callable[[list[Record]], None],
        dropped: Callable[[int], None],
        hold_s: float = 60.0,
        limit: int = 10_000,
        retry_s: float = 0.5,
        forget: Callable[[list[Record]], None] | None = None,
        found_erased: Callable[[str], None] | None = None,
        who_erased: WhoErased | None = None,
        unchecked_limit: int = UNCHECKED,
    ) -> None:
        """``forget(records)`` hears of the decisions given up while the process runs
        (they leave its outbox; not those given up as it stops, which stay there);
        ``found_erased(customer_id)`` of each customer a check found erased, so that what
        else the process holds about them is forgotten (it may not have known), and of
        each whose decision was given up unchecked and who is not asked of again;
        ``who_erased(customer_ids)`` asks Redis of those (``None``: none is asked)."""
        self._erased = erased
        self._forget = forget
        self._found_erased = found_erased
        self._who_erased = who_erased
        # the customers of decisions given up unchecked, oldest first: asked of once
        # Redis answers, so that one erased is forgotten (a dict: ordered, no repeats)
        self._unchecked: dict[str, None] = {}
        self._unchecked_limit = unchecked_limit
        self._stopping = False  # drain began: the customers given up are kept no more
        self._publish = publish
        self._dropped = dropped  # how many were given up unpublished
        self._hold_s = hold_s
        self._limit = limit
        self._retry_s = retry_s
        # oldest first: decisions answered with offers, whose write failed; fallbacks
        self._shown: deque[Waiting] = deque()
        self._fallbacks: deque[Waiting] = deque()
        # taken out of them, being checked now: (answered with offers, fallbacks)
        self._checking: tuple[list[Waiting], list[Waiting]] = ([], [])
        self._added = 0
        self._task: asyncio.Task[None] | None = None
        # given up, by what they were and why: told a line per reason every few seconds
        self._given_up = ThrottledCounts(
            line_per_reason(log, "%d %s not published: %s"), LOG_EVERY_S
        )

    def __len__(self) -> int:
        checking = len(self._checking[0]) + len(self._checking[1])
        return len(self._shown) + len(self._fallbacks) + checking

    def add(self, customer_id: str, value: bytes, shown: bool = False) -> None:
        """Publish ``value``, a fallback decision about ``customer_id`` (``shown``: one
        answered with offers, whose write failed), unless they are erased."""
        loop = asyncio.get_running_loop()
        self._added += 1
        record = (customer_id.encode(), value)
        queue = self._shown if shown else self._fallbacks
        queue.append((self._added, loop.time(), customer_id, record))
        if len(queue) > self._limit:
            self._forgotten([queue.popleft()])
            self._give_up(1, "too many waiting", SHOWN if shown else FALLBACKS)
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name="fallback-outbox")

    @property
    def unchecked(self) -> int:
        """The customers of decisions given up unchecked, kept until Redis says whether
        they are erased."""
        return len(self._unchecked)

    async def _run(self) -> None:
        delay = self._retry_s
        loop = asyncio.get_running_loop()
        while self._shown or self._fallbacks or self._unchecked:
            if not (self._shown or self._fallbacks):  # only customers given up to ask of
                if await self._ask_of_unchecked():
                    delay = self._retry_s
                else:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
                continue
            # out of the queues while checked: the check records them, so newer ones must
            # not push them out (they would be recorded, and never published); more at
            # once as more wait, so that the checks keep up with fallbacks under load
            size = max(CHECK_AT_ONCE, len(self) // CHECK_PARTS)
            shown = [self._shown.popleft() for _ in range(min(size, len(self._shown)))]
            taken = min(size - len(shown), len(self._fallbacks))
            fallbacks = [self._fallbacks.popleft() for _ in range(taken)]
            self._checking = (shown, fallbacks)
            batch = shown + fallbacks
            try:
                gone = await self._erased([(c, record[1]) for _, _, c, record in batch])
            except Exception as exc:  # Redis unavailable, mostly: wait and ask again
                self._checking = ([], [])
                self._shown.extendleft(reversed(shown))
                self._fallbacks.extendleft(reversed(fallbacks))
                late = loop.time() - self._hold_s
                for queue, what in ((self._shown, SHOWN), (self._fallbacks, FALLBACKS)):
                    expired = 0
                    while queue and queue[0][1] < late:
                        self._forgotten([queue.popleft()])
                        expired += 1
                    while len(queue) > self._limit:  # newer ones came meanwhile
                        self._forgotten([queue.popleft()])
                        self._give_up(1, "too many waiting", what)
                    if expired:
                        self._give_up(expired, f"Redis could not say who is erased: {exc}", what)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self._checking = ([], [])
            delay = self._retry_s
            kept = [record for (_, _, _, record), erased in zip(batch, gone, strict=True)
                    if not erased]  # fmt: skip
            for (_, _, customer, _), erased in zip(batch, gone, strict=True):
                self._unchecked.pop(customer, None)  # checked now
                if erased and self._found_erased is not None:
                    self._found_erased(customer)
            if kept:
                self._publish(kept)

    async def _ask_of_unchecked(self) -> bool:
        """Ask Redis whether some of the customers given up unchecked are erased; forget
        those who are. Whether Redis answered."""
        assert self._who_erased is not None  # none is kept without it
        size = max(CHECK_AT_ONCE, self.unchecked // CHECK_PARTS)
        asked = list(itertools.islice(self._unchecked, size))
        try:
            gone = await self._who_erased(asked)
        except Exception:  # Redis unavailable, mostly: asked again later
            return False
        for customer, erased in zip(asked, gone, strict=True):
            if customer in self._unchecked:  # (not checked meanwhile by a decision of theirs)
                del self._unchecked[customer]
                if erased and self._found_erased is not None:
                    self._found_erased(customer)
        return True

    def _forgotten(self, given_up: list[Waiting]) -> None:
        """Decisions given up unchecked while the process runs: out of its outbox, and
        their customers kept to ask of (or forgotten, with no way to ask)."""
        if self._forget is not None:
            self._forget([record for _, _, _, record in given_up])
        for _, _, customer, _ in given_up:
            if self._stopping:  # the process ends, and what it holds with it
                continue
            if self._who_erased is None:
                self._forget_unasked(customer)
                continue
            self._unchecked.pop(customer, None)
            self._unchecked[customer] = None  # the newest last
            while len(self._unchecked) > self._unchecked_limit:  # the oldest: forgotten unasked
                self._forget_unasked(next(iter(self._unchecked)))

    def _forget_unasked(self, customer: str) -> None:
        """Forget what else the process holds about a customer it cannot ask of: it may
        be erased."""
        self._unchecked.pop(customer, None)
        if self._found_erased is not None:
            self._found_erased(customer)

    def _give_up(self, count: int, why: str, what: str = FALLBACKS) -> None:
        self._dropped(count)
        self._given_up.add((what, why), count)

    async def drain(self, within_s: float | None = 5.0) -> bool:
        """Publish what can be checked within ``within_s`` (at shutdown; None: as long
        as it takes); give up the rest, counted. Whether all of it was checked."""
        self._stopping = True
        self._unchecked.clear()  # the process ends, and what it holds with it
        task = self._task
        if task is None or task.done():
            self._given_up.flush()
            return True
        if not (self._shown or self._fallbacks or any(self._checking)):  # only asking
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._given_up.flush()
            return True
        try:
            await asyncio.wait_for(asyncio.shield(task), within_s)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            # those being checked too: recorded or not, the check did not answer in time
            checking_shown, checking_fallbacks = self._checking
            self._checking = ([], [])
            for waiting, what in (
                (checking_shown, SHOWN),
                (self._shown, SHOWN),
                (checking_fallbacks, FALLBACKS),
                (self._fallbacks, FALLBACKS),
            ):
                if waiting:
                    self._give_up(len(waiting), "the process is stopping", what)
                    waiting.clear()
            self._given_up.flush()  # all of it, before the process ends
            return False
        self._given_up.flush()
        return True
