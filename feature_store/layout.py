"""Which layout of Redis a store holds: its key names and what their values mean.

A Moments starting on a Redis with no customers marks it with :data:`LAYOUT`; one whose
layout differs from the mark refuses to start on it, since it would read keys wrong (an
erasure or an export missing what the other layout kept). ``moments rebuild`` into an
empty Redis moves a deployment across: the topics hold everything the store is built
from. Bump :data:`LAYOUT` with any change that the other version would read wrong: a key
kind added, renamed or found another way, a value's format or meaning changed.
"""

from __future__ import annotations

from feature_store.connection import StoreConnection, unavailable_when_transient

LAYOUT = 1  # marks began on 2026-12-03
# what a Redis holding customers but no mark is: said at start and by a forced rebuild
UNMARKED = (
    "holds customers but no feature-store layout mark: it was written by a Moments from "
    "before 2026-12-03, whose layout may differ"
)


class LayoutMismatch(RuntimeError):
    """Redis holds another layout than this version reads."""

    def __init__(self, found: str) -> None:
        super().__init__(
            f"Redis holds feature-store layout {found}, and this version of Moments reads "
            f"layout {LAYOUT}: rebuild into an empty Redis with this version (moments "
            "rebuild --redis-url URL) and point the processes at it, or run the version "
            "that wrote it"
        )
        self.found = found


class StoreLayout:
    """The layout mark of a store (one key beside the customers', holding no data)."""

    def __init__(self, conn: StoreConnection, prefix: str) -> None:
        self._conn = conn
        self._key = f"{prefix}:layout"

    async def read(self) -> str | None:
        """The layout Redis is marked with, as stored (None: not marked)."""
        with unavailable_when_transient():
            found = await self._conn.client.get(self._key)
        return None if found is None else str(found)

    async def mark(self) -> None:
        """Mark Redis as holding this version's layout, unless it is marked already
        (another version starting at the same moment: :meth:`check` then tells)."""
        with unavailable_when_transient():
            await self._conn.client.set(self._key, str(LAYOUT), nx=True)

    async def check(self) -> bool:
        """Raise :class:`LayoutMismatch` when Redis is marked with another layout;
        whether it is marked (False: written before marks, or by no one yet)."""
        found = await self.read()
        if found is None:
            return False
        if found != str(LAYOUT):
            raise LayoutMismatch(found)
        return True
