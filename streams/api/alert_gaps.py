"""Where the API's alert buffer no longer holds what a resuming screen passed.

Per partition of ``interventions``, the offset from which the buffer holds every alert
read there (:attr:`AlertGaps.kept_from`), and why it holds nothing before: alerts never
read into it (before the process started reading, deleted by retention, a topic made
again), which every screen may have missed, or alerts that left it, full, each of one
queue. A screen following one queue missed something only where an alert of its queue
(or of every queue) left, or nothing is known of what was there: a quiet queue is not
told of a gap because a busy one filled the buffer.

>>> from datetime import UTC, datetime
>>> from schemas import Intervention
>>> from streams.api.screen_feed import Alert
>>> def alert(offset, queue):
...     return Alert(f"0-{offset}", Intervention(intervention_id=str(offset), customer_id="c",
...         ts=datetime.now(UTC), kind="vip_attention", priority=2, trigger_event_id="e",
...         reasons=[], suggested_action="", queue=queue), b"")
>>> gaps = AlertGaps()
>>> gaps.never_read(0, before=10)
>>> for offset in range(10, 20):
...     gaps.left(alert(offset, "billing"))
>>> gaps.kept_from, gaps.behind({0: 12}, "vip"), gaps.behind({0: 12}, "Billing ")
({0: 20}, [Behind(partition=0, passed=12, kept_from=20, missed=False)], \
[Behind(partition=0, passed=12, kept_from=20, missed=True)])
>>> gaps.behind({0: 5}, "vip"), gaps.behind({0: 19}, None)
([Behind(partition=0, passed=5, kept_from=20, missed=True)], [])
"""

from __future__ import annotations

from typing import NamedTuple

from schemas.touchpoints import queue_named
from streams.api.screen_feed import Alert, partition_offset

# queues remembered per partition at most (a telephony system may name one per agent):
# past it, the oldest is taken for every queue's, which tells more screens of a gap,
# never fewer
QUEUES_KEPT = 1_000


class Behind(NamedTuple):
    """A partition where the buffer holds nothing a screen passed and some after it."""

    partition: int
    passed: int  # the last offset the screen passed there
    kept_from: int  # the buffer holds every alert read there from this offset
    missed: bool  # whether alerts between may have been for the screen


def _queue_key(queue: str | None) -> str | None:
    """A queue's name as screens are matched to it (``None``: every queue's)."""
    named = queue_named(queue)
    return None if named is None else named.strip().casefold()


class AlertGaps:
    """What each partition's buffered alerts start after, and what left before them."""

    def __init__(self) -> None:
        self.kept_from: dict[int, int] = {}  # partition -> the buffer holds all from here
        self._unread_before: dict[int, int] = {}  # partition -> nothing read before this
        # partition -> queue (None: every queue's) -> the last offset of its that left
        self._left: dict[int, dict[str | None, int]] = {}

    def never_read(self, partition: int, before: int) -> None:
        """Alerts before ``before`` were never read into the buffer: any screen's."""
        self._unread_before[partition] = max(self._unread_before.get(partition, 0), before)
        self.kept_from[partition] = max(self.kept_from.get(partition, 0), before)

    def start_over(self, partition: int, first: int) -> None:
        """The partition is read anew from ``first`` (its topic made again)."""
        self._unread_before[partition] = self.kept_from[partition] = first
        self._left.pop(partition, None)

    def left(self, alert: Alert) -> None:
        """``alert`` left the full buffer."""
        partition, offset = partition_offset(alert.id)
        queues = self._left.setdefault(partition, {})
        key = _queue_key(alert.intervention.queue)
        queues[key] = max(queues.pop(key, -1), offset)  # the newest last
        if len(queues) > QUEUES_KEPT:
            oldest = next(k for k in queues if k is not None)
            queues[None] = max(queues.pop(oldest), queues.get(None, -1))
        self.kept_from[partition] = max(self.kept_from.get(partition, 0), offset + 1)

    def behind(self, passed: dict[int, int], queue: str | None) -> list[Behind]:
        """The partitions where a screen following ``queue`` (``None``: every queue),
        having passed the offsets ``passed``, is behind the buffer: whether it may have
        missed one of its alerts there, or only other queues' left."""
        key = None if queue is None else _queue_key(queue)
        out = []
        for partition, offset in sorted(passed.items()):
            kept = self.kept_from[partition]
            if offset + 1 >= kept:
                continue
            left = self._left.get(partition, {})
            its = left.values() if key is None else (left.get(k, -1) for k in (None, key))
            lost = max(self._unread_before.get(partition, 0) - 1, *its, -1)
            out.append(Behind(partition, offset, kept, lost > offset))
        return out
