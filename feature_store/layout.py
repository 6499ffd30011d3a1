"""Which layout of Redis a store holds: its key names and what their values mean.

A Moments starting on a Redis with no customers marks it with :data:`LAYOUT`; one whose
layout differs from the mark refuses to start on it, since it would read keys wrong (an
erasure or an export missing what the other layout kept). ``moments rebuild`` into an
empty Redis moves a deployment across: the topics hold everything the store is built
from. Bump :data:`LAYOUT` with any change that the other version would read wrong: a key
kind added, renamed or found another way, a value's format or meaning changed. (Not a key
that only the newer version writes and reads, which the older one leaves alone and reads
nothing wrong without: the withdrawals an erasure keeps beside its tombstone.)
"""

from __future__ import annotations

import hashlib
import hmac

from feature_store.connection import StoreConnection
from feature_store.redis_errors import unavailable_when_transient

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


class SecretMismatch(RuntimeError):
    """Redis holds keys named with another key secret than this process's."""

    def __init__(self) -> None:
        super().__init__(
            "Redis was written with another MOMENTS_KEY_SECRET: its customers' keys and "
            "erasure blocks are named with that secret, so with this one an erased "
            "customer could come back and an erasure or export would miss their data. "
            "Start with the secret it was written with, or rebuild into an empty Redis "
            "with the new one (moments rebuild --redis-url URL) and point the processes at it"
        )


def secret_fingerprint(secret: bytes) -> str:
    """Which key secret names a store's keys, without telling the secret.

    >>> secret_fingerprint(b"a") == secret_fingerprint(b"a") != secret_fingerprint(b"b")
    True
    """
    tag = b"moments: the key secret that names this store's keys"
    return hmac.new(secret, tag, hashlib.sha256).hexdigest()[:16]


class StoreLayout:
    """The layout mark of a store, and which key secret named its keys (two keys beside
    the customers', holding no data)."""

    def __init__(self, conn: StoreConnection, prefix: str, secret: bytes) -> None:
        self._conn = conn
        self._key = f"{prefix}:layout"
        self._secret_key = f"{prefix}:key-secret"
        self._lost_key = f"{prefix}:data-lost"
        self._customer_keys = f"{prefix}:{{*"  # every customer key has a {hash tag}
        self._fingerprint = secret_fingerprint(secret)

    async def read(self) -> str | None:
        """The layout Redis is marked with, as stored (None: not marked)."""
        with unavailable_when_transient():
            found = await self._conn.client.get(self._key)
        return None if found is None else str(found)

    async def mark(self) -> None:
        """Mark Redis as holding this version's layout and keys named with this secret,
        unless it is marked already (another process starting at the same moment:
        :meth:`check` then tells)."""
        with unavailable_when_transient():
            await self._conn.client.set(self._key, str(LAYOUT), nx=True)
            await self._conn.client.set(self._secret_key, self._fingerprint, nx=True)

    async def lost_at(self) -> str | None:
        """The Redis run ids after whose start a Moments process last found the store's
        data lost (None: never, or that record was lost too). Processes compare it
        between readings: a change is a loss another process found."""
        with unavailable_when_transient():
            found = await self._conn.client.get(self._lost_key)
        return None if found is None else str(found)

    async def note_lost(self, runs: str) -> None:
        """Record that the store's data was found lost after Redis started as ``runs``
        (its restarted nodes' run ids), before the mark is put back: every process then
        tells the loss, not only the one that noticed it first. An older version, which
        neither reads nor writes it, leaves it alone."""
        with unavailable_when_transient():
            await self._conn.client.set(self._lost_key, runs)

    async def check(self) -> bool:
        """Raise :class:`LayoutMismatch` when Redis is marked with another layout, and
        :class:`SecretMismatch` when its keys were named with another secret; whether it
        is marked with this layout (False: written before marks, or by no one yet). A
        Redis that does not tell its secret yet (marked before secrets were, or holding
        customers but no mark) is told this one, so that from now on no other is used
        with it. Only reads when both marks are there (a full Redis refuses writes)."""
        found = await self.read()
        if found is not None and found != str(LAYOUT):
            raise LayoutMismatch(found)
        with unavailable_when_transient():
            client = self._conn.client
            named_with = await client.get(self._secret_key)
            if named_with is None and (found is not None or await self.holds_customers()):
                await client.set(self._secret_key, self._fingerprint, nx=True)
                named_with = await client.get(self._secret_key)
        if named_with is not None and str(named_with) != self._fingerprint:
            raise SecretMismatch()
        return found is not None

    async def holds_customers(self) -> bool:
        """Whether any customer key of this store's prefix exists (on every node of a
        cluster)."""
        with unavailable_when_transient():
            async for _ in self._conn.client.scan_iter(match=self._customer_keys, count=1000):
                return True
        return False
