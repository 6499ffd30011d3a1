"""The newest alerts an API process keeps for the contact-centre screens, and the screens
it hands each new one to.

The buffer keeps the newest alerts for ``Last-Event-ID`` resumption, and each screen has
an inbox the new ones go to. Erased customers stay off the screens: an alert whose
customer is erased (tombstone in Redis) is dropped, and an erasure removes the customer's
alerts from the buffer and tells the connected screens that may show them to drop theirs
(see :mod:`streams.api.screen_erasures`: each alert sent carries a keyed hash of the
customer id, by which a screen is told of an erasure without learning who was erased).
Recent erasures are remembered (:class:`RecentErasures`): an alert checked before the
erasure is not published after it, nor written from a screen's inbox, and a screen that
resumes is told of each, in case it was away when it was made. What fills the buffer is
the fan-out, :class:`streams.api.alerts.AlertHub`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from feature_store import StoreUnavailable
from streams.api.alert_gaps import AlertGaps
from streams.api.resume_notices import ResumeNotices
from streams.api.screen_erasures import Erased, RecentErasures
from streams.api.screen_feed import Alert, Inbox, Notice, StreamPosition, for_queue

log = logging.getLogger(__name__)
ErasedCheck = Callable[[Sequence[str]], Awaitable[list[bool]]]  # customer ids -> erased?


class AlertBuffer:
    """The newest ``backlog`` alerts, the screens' inboxes, and the erasures lately made."""

    def __init__(
        self, erased: ErasedCheck, refer: Callable[[str], str], backlog: int, retry_s: float
    ) -> None:
        self._erased = erased
        self.refer = refer  # customer id -> the customer_ref screens know them by
        self._backlog = backlog
        self._retry_s = retry_s
        self._buffer: deque[Alert] = deque(maxlen=backlog)
        # where the buffer holds every alert read, and what left it (see missed)
        self._gaps = AlertGaps()
        self.erased_lately = RecentErasures()
        # what a resumed screen is told of them first, built once per change (not per screen)
        self.resume_notices = ResumeNotices(self.erased_lately)
        # what else forgets an erased customer (the fallbacks' contacts), told by forget
        self.also_forget: list[Callable[[str], None]] = []
        self._subscribers: set[Inbox] = set()

    def since(self, position: StreamPosition, queue: str | None) -> list[Alert]:
        """Buffered alerts the stream has not gone past, in ``queue`` if one is named.
        The position is per partition, so a screen that resumes on another replica,
        which received the partitions in another order, misses none."""
        return [a for a in self._buffer if not position.passed(a) and for_queue(a, queue)]

    def subscribe(self, queue: str | None = None) -> Inbox:
        """An inbox for a screen following ``queue`` (``None``: every queue)."""
        inbox = Inbox(queue)  # bounded by Inbox.behind
        self._subscribers.add(inbox)
        return inbox

    def unsubscribe(self, inbox: Inbox) -> None:
        self._subscribers.discard(inbox)

    def close_all(self) -> None:
        """End every screen's stream (the process is stopping, or a partition started
        over); each one resumes from its position."""
        for inbox in self._subscribers:
            inbox.closed = True
            with contextlib.suppress(asyncio.QueueFull):
                inbox.put_nowait(None)
        self._subscribers.clear()

    def forget(self, customer_id: str, at: float | None = None) -> None:
        """The customer was erased (``at``, default now): remember it, drop their
        buffered alerts and tell the screens."""
        ref = self.refer(customer_id)
        # the erasing process hears of it twice: at once, and from the erasures topic
        told = customer_id in self.erased_lately
        self.erased_lately.add(customer_id, ref, at)
        for forget in self.also_forget:
            forget(customer_id)
        kept = (a for a in self._buffer if a.intervention.customer_id != customer_id)
        self._buffer = deque(kept, maxlen=self._backlog)
        if not told:  # the screens dropped their cards, and were sent none since
            self._notify(Erased(customer_id, ref))

    def publish(self, alerts: Sequence[Alert]) -> None:
        """Buffer alerts (already checked against erasures) and hand them to the screens,
        less those of customers erased since the check began, and those the buffer holds
        already under another offset (sent again by a worker that could not know Kafka
        had taken them: a broker that answered too late, a batch taken over)."""
        buffered = {a.intervention.intervention_id for a in self._buffer}
        for alert in alerts:
            if alert.intervention.customer_id in self.erased_lately:
                continue
            if alert.intervention.intervention_id in buffered:
                continue
            buffered.add(alert.intervention.intervention_id)
            if len(self._buffer) == self._buffer.maxlen:  # the oldest leaves the buffer
                self._gaps.left((self._buffer or [alert])[0])
            self._buffer.append(alert)
            self._notify(alert)

    def _notify(self, notice: Notice) -> None:
        for inbox in list(self._subscribers):
            if inbox.behind(notice):  # too far behind: its stream ends, and it resumes
                inbox.closed = True
                self._subscribers.discard(inbox)
            else:
                inbox.put_nowait(notice)

    async def unless_erased(self, alerts: list[Alert]) -> list[Alert]:
        """The alerts whose customers are not erased. While Redis cannot say, the alerts
        wait (an erased customer must not reach a screen), and so do the ones after them."""
        if not alerts:
            return []
        delay = self._retry_s
        while True:
            try:
                gone = await self._erased([a.intervention.customer_id for a in alerts])
            except StoreUnavailable as exc:
                log.warning("holding %d alerts until Redis can say who is erased: %s",
                            len(alerts), exc)  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            return [alert for alert, erased in zip(alerts, gone, strict=True) if not erased]

    async def recheck(self, alerts: list[Alert] | None = None) -> list[Alert]:
        """Check ``alerts`` (by default every buffered one) against the tombstones again
        (after the fan-out was down a while; before a stream sends its backlog, an
        erasure whose record never reached Kafka being unknown here): an erased
        customer's are dropped, and the screens told. The alerts kept."""
        alerts = list(self._buffer) if alerts is None else alerts
        kept = await self.unless_erased(alerts)
        for customer_id in {a.intervention.customer_id for a in alerts} - {
            a.intervention.customer_id for a in kept
        }:
            self.forget(customer_id)
        return kept
