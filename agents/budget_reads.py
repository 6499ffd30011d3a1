"""The day's offer-budget counts as decisions read them, in the worker and in the API
(its batches of recommendations and its offer listing): a count that cannot be read
(written by a tool or another version: no integer, or the day's counts no hash) closes
its offer for the day, rather than failing every read of the day. Said in a warning at
most once a minute per process (the API reads the counts for each batch), with how many
reads met it, naming the offers and no customer: the counts are the whole business's.

>>> said = UnreadableCounts(clock=iter([0.0, 30.0, 61.0]).__next__)
>>> [said.met(["voucher"]), said.met(["voucher"]), said.met(["voucher"])]
[1, None, 2]
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import date

from feature_store import FeatureStore
from feature_store.budgets import EVERY_OFFER

log = logging.getLogger(__name__)

SAY_EVERY_S = 60.0


class UnreadableCounts:
    """The warning that counts cannot be read: the first at once, then at most once per
    ``SAY_EVERY_S`` while they keep being met."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._said_at: float | None = None
        self._reads = 0  # reads that met unreadable counts since the last line

    def met(self, offers: Sequence[str]) -> int | None:
        """One read met the counts of ``offers`` (catalogue ids) it cannot read; returns
        how many reads the line logged now tells of (None: none logged)."""
        self._reads += 1
        now = self._clock()
        if self._said_at is not None and now - self._said_at < SAY_EVERY_S:
            return None
        reads, self._reads, self._said_at = self._reads, 0, now
        log.warning("the day's budget counts of offers %s cannot be read (met by %d reads "
                    "since the last such line): those offers are not made until their "
                    "counts are mended or the day ends", ", ".join(offers), reads)  # fmt: skip
        return reads


SAID = UnreadableCounts()  # this process's


async def spent_today(
    store: FeatureStore,
    day: date,
    limits: Mapping[str, int],
    unreadable: set[str] | None = None,
) -> dict[str, int]:
    """The offer budgets spent on ``day``, by offer. An offer of ``limits`` whose count
    cannot be read reads as spent to its limit there (and is put in ``unreadable``, if
    given): it is not offered until its count is mended or the day ends, and the
    decisions are taken with the others. An outage is raised."""
    found: set[str] = set()
    spent = await store.budgets.spent(day, found)
    closed = [o for o in limits if EVERY_OFFER in found or o in found]
    for offer in closed:
        spent[offer] = max(spent.get(offer, 0), limits[offer])
    if closed:
        SAID.met(closed)
        if unreadable is not None:
            unreadable.update(closed)
    return spent
