"""How many times each offer with a daily budget was shown today, across all customers.

One Redis hash per day, in the catalogue's timezone (offer id -> count), and beside it
the set of decisions counted that day (each with the offers it showed, under a keyed
hash, :func:`counted_tag`), so that a decision is counted once however often its write
is retried or its topic replayed.
:meth:`OfferBudgets.take` counts within the limits, checked where the counts are kept,
so that processes deciding at once cannot take a budget past its limit between them.
Both keys are kept for three days and hold no customer ids, nor decision ids: a decision
id is a pseudonym the decisions topic pairs with the customer id, and an erasure leaves
these keys as they are, so the set holds keyed hashes of them (with the store's key
secret, as customers' keys are named), which nothing outside the store links to a
decision. The calls share their round trip with other callers' commands.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from feature_store.connection import StoreConnection, hash_reply
from feature_store.contact_facts import decision_showing
from feature_store.records import BudgetSpend
from feature_store.redis_errors import raise_failed, raise_unavailable

KEPT_DAYS = 3  # today and the two days before
KEPT_S = KEPT_DAYS * 86400
# what :meth:`OfferBudgets.spent` puts in ``unreadable`` when no count of the day can be
# read (no offer id: catalogue ids are words)
EVERY_OFFER = "*"


class OfferBudgets:
    """Daily counts of offers shown, for :class:`agents.offer_budget.BudgetLedger`."""

    def __init__(self, conn: StoreConnection, prefix: str, secret: bytes) -> None:
        self._conn = conn
        self._prefix = prefix
        self._secret = secret  # the key secret: what decisions are counted under

    def _key(self, day: date) -> str:
        return f"{self._prefix}:budget:{{{day.isoformat()}}}"

    def _counted_key(self, day: date) -> str:  # the same hash slot as the day's counts
        return f"{self._prefix}:budget-counted:{{{day.isoformat()}}}"

    async def spent(self, day: date, unreadable: set[str] | None = None) -> dict[str, int]:
        """Offers shown on ``day`` (UTC) so far, by offer id. With ``unreadable``, a
        count that is no integer (written by a tool, or another version) is left out and
        its offer put there, and counts Redis cannot serve as a hash (a key of another
        type, a value that is not UTF-8) put :data:`EVERY_OFFER` there, rather than
        raise; an outage is raised all the same."""
        started = time.perf_counter()
        replies = await self._conn.submit([("HGETALL", self._key(day))])
        self._conn.observe("budgets", started)
        if unreadable is None:
            raise_failed(replies)
        else:
            raise_unavailable(replies)
            if isinstance(replies[0], Exception):
                unreadable.add(EVERY_OFFER)
                return {}
        counts: dict[str, int] = {}
        for offer, count in hash_reply(replies[0]).items():
            try:
                counts[offer] = int(count)
            except ValueError:
                if unreadable is None:
                    raise
                unreadable.add(offer)
        return counts

    async def add(self, spends: Sequence[BudgetSpend]) -> int:
        """Count the offers each decision showed, once per decision; returns how many
        decisions were counted now (the others were counted before)."""
        return await self._run("spend", spends, [KEPT_S])

    async def take_back(self, spends: Sequence[BudgetSpend], *, for_good: bool) -> int:
        """Take back what :meth:`add` or :meth:`take` counted of decisions not made or
        not shown after all, once per decision; returns how many were taken back now.
        ``for_good``: the decision is marked taken back, so that a write of its spending
        that comes after (retried) adds nothing; without it, a decision the worker takes
        again under the same id (it may show the same offers) counts again."""
        return await self._run("unspend", spends, [KEPT_S, 1 if for_good else 0])

    async def take(self, spends: Sequence[BudgetSpend], limits: Mapping[str, int]) -> set[str]:
        """Count the offers each decision showed within ``limits`` (offer id -> daily
        limit), in order, once per decision, checked where they are counted: returns the
        ids of the decisions refused, whose offers would take a budget past its limit
        (nothing of them is counted). A decision counted already stands; one taken back
        already is refused."""
        limits_json = json.dumps(dict(limits), sort_keys=True)
        calls, owners = [], []
        for day, spent in sorted(_by_day(spends).items()):
            calls.append(("take", (self._key(day), self._counted_key(day)),
                          [KEPT_S, limits_json, *_arguments(spent, self._secret)]))  # fmt: skip
            owners.append(spent)
        if not calls:
            return set()
        refused: set[str] = set()
        for spent, positions in zip(owners, await self._conn.eval_mixed("budgets", calls),
                                    strict=True):  # fmt: skip
            refused.update(spent[int(p) - 1].decision_id for p in positions)
        return refused

    async def _run(self, script: str, spends: Sequence[BudgetSpend], head: list[Any]) -> int:
        calls = [(script, (self._key(day), self._counted_key(day)),
                  [*head, *_arguments(spent, self._secret)])
                 for day, spent in sorted(_by_day(spends).items())]  # fmt: skip
        if not calls:
            return 0
        return sum(int(n) for n in await self._conn.eval_mixed("budgets", calls))


def _by_day(spends: Sequence[BudgetSpend]) -> dict[date, list[BudgetSpend]]:
    """The spends that show limited offers, by their day."""
    by_day: dict[date, list[BudgetSpend]] = defaultdict(list)
    for spend in spends:
        if spend.offer_ids:
            by_day[spend.day].append(spend)
    return by_day


def _arguments(spends: list[BudgetSpend], secret: bytes) -> list[Any]:
    """Per spend: the tag it is counted under, its number of offers, the offers."""
    args: list[Any] = []
    for spend in spends:
        args += [counted_tag(spend, secret), len(spend.offer_ids), *spend.offer_ids]
    return args


def counted_id(spend: BudgetSpend) -> str:
    """The id a decision's spending is counted under: its decision and the offers it
    showed. The same offers under the same decision count once however often they are
    written; other offers under it (a worker's decision taken again, with the same id)
    count too.

    >>> def spend(*shown: str) -> BudgetSpend:
    ...     return BudgetSpend(date(2026, 12, 1), "d1", ("voucher",), shown)
    >>> counted_id(spend("voucher", "tips")) == counted_id(spend("tips", "voucher"))
    True
    >>> counted_id(spend("voucher", "tips")) == counted_id(spend("voucher", "news"))
    False
    """
    return decision_showing(spend.decision_id, spend.shown or spend.offer_ids)


def counted_tag(spend: BudgetSpend, secret: bytes) -> str:
    """What a decision's spending is counted under in Redis: a keyed hash of its
    :func:`counted_id`, the same for the same decision and offers (a retry counts once),
    which names no decision to whoever reads the store without the key secret.

    >>> spend = BudgetSpend(date(2026, 12, 1), "d1", ("voucher",))
    >>> tag = counted_tag(spend, b"secret")
    >>> tag == counted_tag(spend, b"secret") != counted_tag(spend, b"other"), len(tag)
    (True, 24)
    >>> all(c in "0123456789abcdef" for c in tag)  # hex: not the decision id
    True
    """
    named = f"moments budget-counted\x1f{counted_id(spend)}".encode()
    return hmac.new(secret, named, hashlib.blake2b).digest()[:12].hex()
