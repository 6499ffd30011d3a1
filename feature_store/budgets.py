"""How many times each offer with a daily budget was shown today, across all customers.

One Redis hash per UTC day (offer id -> count), and beside it the set of decisions
counted that day, so that a decision is counted once however often its write is retried
or its topic replayed. Both are kept for three days and hold no customer data (decision
ids are random or derived from event ids by a one-way hash). Both calls share their
round trip with other callers' commands.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import date
from typing import Any

from feature_store.connection import StoreConnection, hash_reply, raise_failed
from feature_store.records import BudgetSpend

KEPT_DAYS = 3  # today and the two days before
KEPT_S = KEPT_DAYS * 86400


class OfferBudgets:
    """Daily counts of offers shown, for :class:`agents.offer_budget.BudgetLedger`."""

    def __init__(self, conn: StoreConnection, prefix: str) -> None:
        self._conn = conn
        self._prefix = prefix

    def _key(self, day: date) -> str:
        return f"{self._prefix}:budget:{{{day.isoformat()}}}"

    def _counted_key(self, day: date) -> str:  # the same hash slot as the day's counts
        return f"{self._prefix}:budget-counted:{{{day.isoformat()}}}"

    async def spent(self, day: date) -> dict[str, int]:
        """Offers shown on ``day`` (UTC) so far, by offer id."""
        started = time.perf_counter()
        replies = await self._conn.submit([("HGETALL", self._key(day))])
        self._conn.observe("budgets", started)
        raise_failed(replies)
        return {offer: int(count) for offer, count in hash_reply(replies[0]).items()}

    async def add(self, spends: Sequence[BudgetSpend]) -> int:
        """Count the offers each decision showed, once per decision; returns how many
        decisions were counted now (the others were counted before)."""
        return await self._run("spend", spends, [KEPT_S])

    async def withdraw(self, spends: Sequence[BudgetSpend]) -> int:
        """Take back what :meth:`add` counted of decisions that were not made after all
        (the store refused to record them), once per decision; returns how many were
        taken back now. A write of their spending that comes after (retried) adds
        nothing."""
        return await self._run("unspend", spends, [KEPT_S])

    async def _run(self, script: str, spends: Sequence[BudgetSpend], head: list[Any]) -> int:
        by_day: dict[date, list[Any]] = defaultdict(list)
        for spend in spends:
            if spend.offer_ids:
                args = by_day[spend.day]
                args += [spend.decision_id, len(spend.offer_ids), *spend.offer_ids]
        if not by_day:
            return 0
        calls = [(script, (self._key(day), self._counted_key(day)), [*head, *args])
                 for day, args in sorted(by_day.items())]  # fmt: skip
        return sum(int(n) for n in await self._conn.eval_mixed("budgets", calls))
