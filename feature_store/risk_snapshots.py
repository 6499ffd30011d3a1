"""Churn-risk snapshots waiting for their label: a customer's features when a risk was
scored, labelled later by whether the customer came back (see streams.risk_sweeper)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from feature_store.connection import StoreConnection
from feature_store.keys import CustomerKeys
from feature_store.records import PendingRisk
from feature_store.redis_errors import raise_failed, unavailable_when_transient


class RiskSnapshots:
    """The snapshots kept in customers' profiles, found by a sweep and settled by it."""

    def __init__(self, conn: StoreConnection, keys: CustomerKeys) -> None:
        self._conn = conn
        self._keys = keys

    async def pending(
        self, page: int = 500, unreadable: Callable[[int], None] | None = None
    ) -> AsyncIterator[list[PendingRisk]]:
        """Every customer with a snapshot waiting for its label, a page at a time (a
        SCAN: on every node of a cluster, without blocking Redis). A customer whose keys
        cannot be read so (a key of another type, a time that is no number) is left out,
        and ``unreadable`` told how many were, page by page: one such key failed every
        sweep. Raises :class:`StoreUnavailable` while Redis cannot serve."""
        keys: list[str] = []
        scan = self._conn.client.scan_iter(match=self._keys.profile_pattern(), count=page)
        while True:
            with unavailable_when_transient():
                key = await anext(scan, None)
            if key is None:
                break
            if self._keys.is_profile(str(key)):
                keys.append(str(key))
            if len(keys) >= page:
                yield await self._pending_of(keys, unreadable)
                keys = []
        if keys:
            yield await self._pending_of(keys, unreadable)

    async def _pending_of(
        self, keys: list[str], unreadable: Callable[[int], None] | None
    ) -> list[PendingRisk]:
        pipe = self._conn.pipeline()
        for key in keys:
            pipe.hmget(key, ["risk_snapshot", "last_seen"])
        replies = await self._conn.execute("sweep", pipe, raise_on_error=False)
        waiting: list[tuple[str, str | None, Any]] = []
        for key, reply in zip(keys, replies, strict=True):
            if isinstance(reply, Exception):
                waiting.append((self._keys.subject_of(key), None, None))
            elif reply[0]:
                waiting.append((self._keys.subject_of(key), str(reply[0]), reply[1]))
        if not waiting:
            return []
        pipe = self._conn.pipeline()  # when the touchpoints listed happened (the scores)
        for subject, _, _ in waiting:
            pipe.zrange(self._keys.for_subject(subject).recent, 0, -1, withscores=True)
        listed = await self._conn.execute("sweep", pipe, raise_on_error=False)
        found: list[PendingRisk] = []
        for (subject, snapshot, seen), entries in zip(waiting, listed, strict=True):
            try:
                if snapshot is None or isinstance(entries, Exception):
                    raise ValueError("a key of another type")
                times = tuple(_whole(at) for _, at in entries)
                found.append(PendingRisk(subject, snapshot, _whole(seen) if seen else None, times))
            except (ValueError, OverflowError):
                continue
        if unreadable is not None and len(found) < len(waiting):
            unreadable(len(waiting) - len(found))
        return found

    async def erased(self, pending: Sequence[PendingRisk]) -> list[bool]:
        """Whether each snapshot's customer is erased now (since the page was read)."""
        if not pending:
            return []
        replies = await self._conn.submit(
            [("EXISTS", self._keys.for_subject(p.subject).tombstone) for p in pending]
        )
        raise_failed(replies)
        return [bool(int(r)) for r in replies]

    async def settle(self, settled: Sequence[PendingRisk]) -> list[bool]:
        """Remove the snapshots a sweep labelled; False for each one a touchpoint changed
        meanwhile (that touchpoint settles it instead)."""
        if not settled:
            return []
        calls = [((self._keys.for_subject(p.subject).profile,), [p.snapshot]) for p in settled]
        return [bool(int(r)) for r in await self._conn.eval_many("settle", "settle", calls)]


def _whole(figure: object) -> int:
    """A stored time as an integer (ms); ValueError (or OverflowError) for one that is not."""
    if isinstance(figure, float):
        return int(figure)  # a sorted set's score
    return int(str(figure))
