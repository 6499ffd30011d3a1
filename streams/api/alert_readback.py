"""Which alerts an API process that starts buffers of those it read back.

A process that starts reads up to a whole buffer's worth (``keep``) back in every
partition of ``interventions`` (alerts are keyed by customer, so one partition may hold
all the recent ones), and keeps the newest ``keep`` of them all. Each partition is cut
from its oldest alert on (never one in its middle, even where the records' times are
not in offset order), so that what left the buffer there is every alert before the
first one kept.

>>> from datetime import UTC, datetime
>>> from schemas import Intervention
>>> def alert(partition, offset):
...     return Alert(f"{partition}-{offset}", Intervention(intervention_id=f"{partition}{offset}",
...         customer_id="c", ts=datetime.now(UTC), kind="vip_attention", priority=2,
...         trigger_event_id="e", reasons=[], suggested_action=""), b"")
>>> read = {0: [(100, alert(0, 7)), (300, alert(0, 8)), (105, alert(0, 9))],
...         1: [(200, alert(1, 3)), (400, alert(1, 4))]}
>>> kept, left = newest(read, keep=3)  # 0-9 is older than 1-3, but 0-8 is kept
>>> [a.id for a in kept], [a.id for a in left]
(['0-8', '0-9', '1-4'], ['0-7', '1-3'])
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence

from streams.api.screen_feed import Alert

Dated = tuple[int, Alert]  # the record's time (ms), its alert


def newest(read: Mapping[int, Sequence[Dated]], keep: int) -> tuple[list[Alert], list[Alert]]:
    """The alerts to buffer (at most ``keep``, oldest first, each partition's in offset
    order) and those left out (each partition's oldest), of the alerts ``read`` back per
    partition (in offset order): the partitions are merged by their oldest alerts' times,
    and the first of the merge left out."""
    merged = list(heapq.merge(*(read[p] for p in sorted(read)), key=lambda dated: dated[0]))
    cut = max(len(merged) - keep, 0)
    return [alert for _, alert in merged[cut:]], [alert for _, alert in merged[:cut]]
