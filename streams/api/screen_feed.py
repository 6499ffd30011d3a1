"""What a contact-centre screen is fed: alerts (``<partition>-<offset>`` of
``interventions``), the position its stream has reached in each partition (the event id
it resumes from), and its inbox of notices, alerts and erasures, bounded apart."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

from schemas import Intervention
from schemas.touchpoints import queue_named
from streams.api.screen_erasures import Erased

# Kafka's partitions are 32-bit and its offsets 64-bit: an id with longer numbers is not ours
PARTITION_DIGITS, OFFSET_DIGITS = 10, 19


@dataclass(frozen=True, slots=True)
class Alert:
    id: str
    intervention: Intervention
    raw: bytes


Notice = Alert | Erased


class StreamPosition:
    """How far one screen's stream has gone: per partition, the offset of the newest
    alert it has passed (sent, or left out by its queue filter). Written as the event
    id, ``<partition>-<offset>`` pairs joined by ``.``; an id of the older form (one
    alert's ``<partition>-<offset>``) reads as a position in that partition alone.

    >>> position = StreamPosition.parse("0-7.2-3")
    >>> position.passed(Alert("0-7", None, b"")), position.passed(Alert("1-1", None, b""))
    (True, False)
    >>> position.advance(Alert("2-9", None, b"")); position.event_id()
    '0-7.2-9'
    >>> StreamPosition.parse("not-an-id").event_id()
    ''
    >>> StreamPosition.parse("0-" + "9" * 5000).event_id()  # no Kafka offset is that long
    ''
    """

    def __init__(self, offsets: dict[int, int] | None = None) -> None:
        self._offsets = offsets or {}

    @classmethod
    def parse(cls, event_id: str | None) -> StreamPosition:
        """The position an event id names; none (send every buffered alert) for an id
        that is absent or not one of ours."""
        offsets: dict[int, int] = {}
        for pair in (event_id or "").split("."):
            partition, dash, offset = pair.partition("-")
            if not (
                dash and _number(partition, PARTITION_DIGITS) and _number(offset, OFFSET_DIGITS)
            ):
                return cls()
            offsets[int(partition)] = max(int(offset), offsets.get(int(partition), -1))
        return cls(offsets)

    def passed(self, alert: Alert) -> bool:
        """Whether the stream has gone past ``alert`` (it was sent or left out)."""
        partition, offset = partition_offset(alert.id)
        return offset <= self._offsets.get(partition, -1)

    def advance(self, alert: Alert) -> None:
        partition, offset = partition_offset(alert.id)
        if offset > self._offsets.get(partition, -1):
            self._offsets[partition] = offset

    def event_id(self) -> str:
        return ".".join(f"{p}-{o}" for p, o in sorted(self._offsets.items()))

    def offsets(self) -> Iterator[tuple[int, int]]:
        """Each partition the stream has gone into, with the newest offset passed there."""
        return iter(sorted(self._offsets.items()))

    def cover(self, reached: dict[int, int]) -> None:
        """Take the partitions the stream has not gone into as passed up to ``reached``
        (partition -> next offset): where the fan-out had read, in partitions with no
        alert to send. Its event id then names them, so that alerts it misses there
        while away are told as a gap.

        >>> position = StreamPosition.parse("0-7")
        >>> position.cover({0: 20, 1: 5, 2: 0}); position.event_id()
        '0-7.1-4'
        """
        for partition, next_offset in reached.items():
            if partition not in self._offsets and next_offset > 0:
                self._offsets[partition] = next_offset - 1

    def skip_to(self, partition: int, offset: int) -> None:
        """Take the alerts of ``partition`` up to ``offset`` as passed (told as a gap)."""
        if offset > self._offsets.get(partition, -1):
            self._offsets[partition] = offset

    def within(self, ends: dict[int, int]) -> StreamPosition:
        """Without the partitions whose offset is at or past their known end (no alert
        was ever there), nor, once the topic's partitions are known (``ends`` not
        empty), the partitions it does not have: had they been kept, the first alerts of
        one added later would be taken as passed.

        >>> StreamPosition.parse("0-7.1-500.9-2").within({0: 8, 1: 3}).event_id()
        '0-7'
        """
        return StreamPosition({
            p: o for p, o in self._offsets.items() if o < ends.get(p, 0) or not ends
        })  # fmt: skip


def for_queue(alert: Alert, queue: str | None) -> bool:
    """Whether a screen following ``queue`` (``None``: every queue) shows ``alert``, the
    names compared without case or surrounding spaces (a telephony system's "Billing " is
    the screen's "billing"). An alert for no queue in particular (a win-back, a call that
    named none, or a blank one) is for every screen.

    >>> from datetime import UTC, datetime
    >>> def alert(queue):
    ...     return Alert("0-1", Intervention(intervention_id="i", customer_id="c",
    ...         ts=datetime.now(UTC), kind="vip_attention", priority=2,
    ...         trigger_event_id="e", reasons=[], suggested_action="", queue=queue), b"")
    >>> [for_queue(alert(q), "retention") for q in ("retention", "billing", None, "", " ")]
    [True, False, True, True, True]
    >>> for_queue(alert("Retention "), "retention"), for_queue(alert("retention"), " RETENTION")
    (True, True)
    """
    if queue is None:
        return True
    named = queue_named(alert.intervention.queue)
    return named is None or named.strip().casefold() == queue.strip().casefold()


def _number(text: str, digits: int) -> bool:
    """Whether ``text`` is a whole number of at most ``digits`` ASCII digits."""
    return 0 < len(text) <= digits and text.isascii() and text.isdecimal()


def partition_offset(alert_id: str) -> tuple[int, int]:
    partition, _, offset = alert_id.partition("-")
    return int(partition), int(offset)


ALERTS_WAITING = 1_000  # alerts for its screen a stream may fall behind before it is ended
PASSED_WAITING = 20_000  # other queues' alerts likewise (it passes them without a write)
ERASURES_WAITING = 10_000  # erasure notices likewise (as many as are remembered)


class Inbox(asyncio.Queue[Notice | None]):
    """One screen's notices. ``closed`` once it fell too far behind (its stream must end,
    so that the screen reconnects and resumes from the buffer) or the process stops;
    ``None`` in it wakes the stream up to see that. The alerts for its screen, the
    alerts it passes (other queues') and erasure notices are counted apart: a burst of
    erasures, or of another queue's alerts, ends no stream that would be sent none of
    them, as it would if they took the room of the alerts it shows."""

    closed = False

    def __init__(self, queue: str | None = None) -> None:
        super().__init__()
        self.queue = queue
        self.waiting = {"alerts": 0, "passed": 0, "erasures": 0}

    def _kind(self, notice: Notice) -> str:
        if isinstance(notice, Erased):
            return "erasures"
        return "alerts" if for_queue(notice, self.queue) else "passed"

    def _put(self, item: Notice | None) -> None:
        super()._put(item)
        if item is not None:
            self.waiting[self._kind(item)] += 1

    def _get(self) -> Notice | None:
        item = super()._get()
        if item is not None:
            self.waiting[self._kind(item)] -= 1
        return item

    def behind(self, notice: Notice) -> bool:
        """Whether the screen is too far behind to be handed ``notice``."""
        kind = self._kind(notice)
        limit = {"alerts": ALERTS_WAITING, "passed": PASSED_WAITING}.get(kind, ERASURES_WAITING)
        return self.waiting[kind] >= limit
