"""How many times each offer with a daily budget was shown today, across all customers.

One Redis hash per UTC day (offer id -> count), kept for three days; it holds no
customer data. Both calls share their round trip with other callers' commands.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping
from datetime import date

from feature_store.connection import StoreConnection, hash_reply, raise_failed
from feature_store.pipelining import Command

KEPT_DAYS = 3  # today and the two days before
KEPT_S = KEPT_DAYS * 86400


class OfferBudgets:
    """Daily counts of offers shown, for :class:`agents.offer_budget.BudgetLedger`."""

    def __init__(self, conn: StoreConnection, prefix: str) -> None:
        self._conn = conn
        self._prefix = prefix

    def _key(self, day: date) -> str:
        return f"{self._prefix}:budget:{{{day.isoformat()}}}"

    async def spent(self, day: date) -> dict[str, int]:
        """Offers shown on ``day`` (UTC) so far, by offer id."""
        started = time.perf_counter()
        replies = await self._conn.submit([("HGETALL", self._key(day))])
        self._conn.observe("budgets", started)
        raise_failed(replies)
        return {offer: int(count) for offer, count in hash_reply(replies[0]).items()}

    async def add(self, spent: Mapping[tuple[date, str], int]) -> None:
        """Add offers shown (by UTC day and offer id) to the counts."""
        by_day: dict[date, list[tuple[str, int]]] = defaultdict(list)
        for (day, offer_id), count in spent.items():
            by_day[day].append((offer_id, count))
        commands: list[Command] = []
        for day, counts in sorted(by_day.items()):
            key = self._key(day)
            commands += [("HINCRBY", key, offer_id, count) for offer_id, count in counts]
            commands.append(("EXPIRE", key, KEPT_S))
        if commands:
            started = time.perf_counter()
            replies = await self._conn.submit(commands)
            self._conn.observe("budgets", started)
            raise_failed(replies)
