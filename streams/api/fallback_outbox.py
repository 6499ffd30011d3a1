"""Fallback decisions wait here until Redis says their customers are not erased (and so
do decisions answered whose write failed: it cannot say whether the store refused them).

A fallback is answered without reading Redis (it was slow or down), so it cannot know
whether its customer was erased; the API process remembers only the last day's
erasures. Its decision is published once a check says the customer is not erased (the
API's check records the decision, which the store refuses for an erased customer), and
never for one who is. While Redis cannot answer, the decisions wait, the
checks retried with a growing pause; one that waits longer than ``hold_s`` (or is pushed
out by ``limit`` newer ones) is not published, and counted as such.

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
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

log = logging.getLogger(__name__)

Record = tuple[bytes, bytes]  # the decision's Kafka key (the customer id) and value
# how often the decisions given up are logged, counted by reason: one line each would
# flood the log (and the loop) while new fallbacks push the oldest out, thousands a second
LOG_EVERY_S = 5.0
# the decisions waiting, as (customer id, decision JSON) -> whether each customer is erased
ErasedCheck = Callable[[Sequence[tuple[str, bytes]]], Awaitable[list[bool]]]


class FallbackOutbox:
    def __init__(
        self,
        erased: ErasedCheck,
        publish: Callable[[list[Record]], None],
        dropped: Callable[[int], None],
        hold_s: float = 60.0,
        limit: int = 10_000,
        retry_s: float = 0.5,
    ) -> None:
        self._erased = erased
        self._publish = publish
        self._dropped = dropped  # how many were given up unpublished
        self._hold_s = hold_s
        self._limit = limit
        self._retry_s = retry_s
        # (number, since, customer id, record), oldest first
        self._waiting: deque[tuple[int, float, str, Record]] = deque()
        self._added = 0
        self._task: asyncio.Task[None] | None = None
        self._unlogged: dict[str, int] = {}  # given up since the last log line, by reason
        self._log_due: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, customer_id: str, value: bytes) -> None:
        """Publish ``value``, a fallback decision about ``customer_id``, unless they
        are erased."""
        loop = asyncio.get_running_loop()
        self._added += 1
        record = (customer_id.encode(), value)
        self._waiting.append((self._added, loop.time(), customer_id, record))
        if len(self._waiting) > self._limit:
            self._waiting.popleft()
            self._give_up(1, "too many fallbacks waiting")
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name="fallback-outbox")

    async def _run(self) -> None:
        delay = self._retry_s
        loop = asyncio.get_running_loop()
        while self._waiting:
            batch = list(self._waiting)
            try:
                gone = await self._erased([(c, record[1]) for _, _, c, record in batch])
            except Exception as exc:  # Redis unavailable, mostly: wait and ask again
                late = loop.time() - self._hold_s
                expired = 0
                while self._waiting and self._waiting[0][1] < late:
                    self._waiting.popleft()
                    expired += 1
                if expired:
                    self._give_up(expired, f"Redis could not say who is erased: {exc}")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = self._retry_s
            last = batch[-1][0]  # those added meanwhile stay for the next check
            still = set()  # not given up meanwhile (pushed out by newer ones)
            while self._waiting and self._waiting[0][0] <= last:
                still.add(self._waiting.popleft()[0])
            kept = [record for (number, _, _, record), erased in zip(batch, gone, strict=True)
                    if number in still and not erased]  # fmt: skip
            if kept:
                self._publish(kept)

    def _give_up(self, count: int, why: str) -> None:
        self._dropped(count)
        self._unlogged[why] = self._unlogged.get(why, 0) + count
        if self._log_due is None:  # now, and what follows in LOG_EVERY_S after
            self._log_given_up()
            loop = asyncio.get_running_loop()
            self._log_due = loop.call_later(LOG_EVERY_S, self._log_given_up, True)

    def _log_given_up(self, ended: bool = False) -> None:
        """Log the decisions given up since the last line, a line per reason;
        ``ended``: the wait after a line is over (the next give-up logs at once)."""
        for why, count in self._unlogged.items():
            log.warning("%d fallback decisions not published: %s", count, why)
        self._unlogged.clear()
        if ended:
            self._log_due = None

    async def drain(self, within_s: float | None = 5.0) -> bool:
        """Publish what can be checked within ``within_s`` (at shutdown; None: as long
        as it takes); give up the rest, counted. Whether all of it was checked."""
        task = self._task
        if task is None or task.done():
            self._log_given_up()
            return True
        try:
            await asyncio.wait_for(asyncio.shield(task), within_s)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if self._waiting:
                self._give_up(len(self._waiting), "the process is stopping")
                self._waiting.clear()
            self._log_given_up()  # all of it, before the process ends
            return False
        self._log_given_up()
        return True
