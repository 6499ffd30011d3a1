"""The API processes' outboxes in Redis: each decision an API process records is also
kept in its outbox (a hash, by decision id) until Kafka acknowledged it, so that another
process can publish it should this one die first.

An outbox is named by a random process id, never by a customer. Its key and its lease
(the process is alive while the lease is there) share a hash tag of that id, one slot,
so that retiring them is one script (compare the lease's holder, then delete): the tag
follows ``outbox:``, never the prefix's colon, which is where a customer's keys carry
theirs (:mod:`feature_store.layout` finds customers by ``<prefix>:{*``). The registry
of processes is in a slot of its own. Writing to an outbox rides in the round trip
that records the decisions (:meth:`hold`: commands added to it, not a round trip of
their own); everything else here is a round trip of its own, made at most every 100 ms
(removals) or every second (the lease).

A second hash under the same tag marks the decisions shown before Redis said whether it
recorded them (their callers answered when the latency budget ran out, or answered
outside their batch's write): a sweeper publishes those unless their customer is erased,
recorded or not (:meth:`keep_shown`, a round trip of its own, made only for them).

>>> boxes = DecisionOutboxes(None, "m")
>>> boxes.hold("p1", [("d1", b"{}")], ttl_s=60)
[('HSET', 'm:outbox:{p1}', 'd1', b'{}'), ('PEXPIRE', 'm:outbox:{p1}', 60000)]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from feature_store.connection import StoreConnection
from feature_store.pipelining import Command
from feature_store.redis_errors import raise_failed


class DecisionOutboxes:
    """The outboxes, leases and registry of the API processes, under ``prefix``."""

    def __init__(self, conn: StoreConnection | None, prefix: str) -> None:
        self._conn = conn
        self._prefix = prefix

    def box(self, process: str) -> str:
        """The outbox of ``process``: decision id -> the decision's JSON."""
        return f"{self._prefix}:outbox:{{{process}}}"

    def lease(self, process: str) -> str:
        """Present while ``process`` (or whoever sweeps its outbox) is alive: the holder."""
        return f"{self._prefix}:outbox-lease:{{{process}}}"

    def shown(self, process: str) -> str:
        """The decisions of ``process``'s outbox shown before they were known recorded:
        decision id -> 1."""
        return f"{self._prefix}:outbox-shown:{{{process}}}"

    @property
    def registry(self) -> str:
        """The set of the processes that may have an outbox."""
        return f"{self._prefix}:outboxes"

    def hold(self, process: str, entries: Sequence[tuple[str, bytes]], ttl_s: int) -> list[Command]:
        """The commands that keep ``entries`` (decision id, JSON) in the outbox, for the
        round trip that records them; its lifetime renewed to ``ttl_s``."""
        if not entries:
            return []
        box = self.box(process)
        flat = [part for entry in entries for part in entry]
        return [("HSET", box, *flat), ("PEXPIRE", box, ttl_s * 1000)]

    async def _submit(self, commands: list[Command]) -> list[Any]:
        assert self._conn is not None
        replies = await self._conn.submit(commands)
        raise_failed(replies)
        return replies

    async def keep_shown(
        self,
        process: str,
        decision_ids: Sequence[str],
        entries: Sequence[tuple[str, bytes]],
        ttl_s: int,
    ) -> None:
        """Mark ``decision_ids`` shown (their callers were answered with them), keeping
        ``entries`` (decision id, JSON, marked too) in the outbox with them, in one
        round trip."""
        marked = [*decision_ids, *(d for d, _ in entries)]
        if not marked:
            return
        shown = self.shown(process)
        await self._submit([
            *self.hold(process, entries, ttl_s),
            ("HSET", shown, *(part for d in marked for part in (d, 1))),
            ("PEXPIRE", shown, ttl_s * 1000),
        ])  # fmt: skip

    async def are_shown(self, process: str, decision_ids: Sequence[str]) -> list[bool]:
        """Whether each of the decisions is marked shown (:meth:`keep_shown`)."""
        if not decision_ids:
            return []
        (marks,) = await self._submit([("HMGET", self.shown(process), *decision_ids)])
        return [mark is not None for mark in marks]

    def removal(
        self, process: str, decision_ids: Sequence[str], shown: Sequence[str] = ()
    ) -> list[Command]:
        """The commands that remove decisions from the outbox (Kafka has them, or they
        are not to be sent), and the marks of those of them ``shown``, for a round trip
        of their own (:meth:`release`) or one that records decisions."""
        commands: list[Command] = []
        if decision_ids:
            commands.append(("HDEL", self.box(process), *decision_ids))
        if shown:
            commands.append(("HDEL", self.shown(process), *shown))
        return commands

    def removed(
        self, process: str, commands: Sequence[Command], replies: Sequence[Any]
    ) -> tuple[list[str], list[str]]:
        """Of the commands of :meth:`removal` among ``commands``, the decisions and the
        marks that their ``replies`` say are removed (not those of a command that failed).

        >>> boxes = DecisionOutboxes(None, "m")
        >>> done = [*boxes.hold("p1", [("d3", b"{}")], 60), *boxes.removal("p1", ["d1"], ["d1"])]
        >>> boxes.removed("p1", done, [1, 1, 1, RuntimeError("away")])
        (['d1'], [])
        """
        box, marks = self.box(process), self.shown(process)
        gone: tuple[list[str], list[str]] = ([], [])
        for command, reply in zip(commands, replies, strict=False):
            ok = command[0] == "HDEL" and not isinstance(reply, Exception)
            if ok and command[1] in (box, marks):
                gone[command[1] == marks].extend(str(d) for d in command[2:])
        return gone

    async def release(
        self, process: str, decision_ids: Sequence[str], shown: Sequence[str] = ()
    ) -> None:
        """Remove decisions from the outbox, and the marks of those ``shown``
        (:meth:`removal`, in a round trip of its own)."""
        commands = self.removal(process, decision_ids, shown)
        if commands:
            await self._submit(commands)

    async def renew(self, process: str, lease_ms: int, ttl_s: int) -> None:
        """Say ``process`` is alive for ``lease_ms`` more (taking its lease back from a
        sweeper that took it for dead), and keep its outbox (and its marks of decisions
        shown) ``ttl_s`` more."""
        await self._submit([
            ("SET", self.lease(process), process, "PX", lease_ms),
            ("PEXPIRE", self.box(process), ttl_s * 1000),
            ("PEXPIRE", self.shown(process), ttl_s * 1000),
            ("SADD", self.registry, process),
        ])  # fmt: skip

    async def processes(self) -> list[str]:
        """The processes that may have an outbox."""
        (members,) = await self._submit([("SMEMBERS", self.registry)])
        return sorted(str(m.decode() if isinstance(m, bytes) else m) for m in members)

    async def claim(self, processes: Sequence[str], sweeper: str, lease_ms: int) -> list[str]:
        """Take the lease of each of ``processes`` whose lease expired (one winner each:
        SET NX); those taken, whose outboxes are now ``sweeper``'s to publish."""
        if not processes:
            return []
        replies = await self._submit(
            [("SET", self.lease(p), sweeper, "NX", "PX", lease_ms) for p in processes]
        )
        return [p for p, reply in zip(processes, replies, strict=True) if reply]

    async def keep_claim(self, process: str, sweeper: str, lease_ms: int) -> bool:
        """Hold the lease of ``process`` ``lease_ms`` more; whether it was still
        ``sweeper``'s (not: the process came back, or another took it after it expired)."""
        assert self._conn is not None
        call = ("outbox_lease", (self.lease(process),), (sweeper, lease_ms))
        (held,) = await self._conn.eval_mixed("outbox", [call])
        return int(held) == 1

    async def scan(
        self, process: str, cursor: int, count: int
    ) -> tuple[int, list[tuple[str, bytes]]]:
        """A part of an outbox (HSCAN): the next cursor (0: the end), and the entries."""
        (reply,) = await self._submit([("HSCAN", self.box(process), cursor, "COUNT", count)])
        after, flat = reply
        if isinstance(flat, dict):  # (a RESP3 reply)
            flat = [part for pair in flat.items() for part in pair]
        entries = [(_text(flat[i]), _raw(flat[i + 1])) for i in range(0, len(flat), 2)]
        return int(after), entries

    async def size(self, process: str) -> int:
        """How many decisions the outbox of ``process`` holds."""
        (count,) = await self._submit([("HLEN", self.box(process))])
        return int(count)

    async def retire(self, process: str, holder: str) -> int | None:
        """Delete the lease of ``process`` if ``holder`` (the process itself at its stop,
        or its sweeper) still holds it, and the process's place in the registry when its
        outbox is empty too (and its marks then); the decisions left in the outbox (0:
        retired), ``None`` when the lease is another's (nothing done: the process came
        back, or another sweeps)."""
        assert self._conn is not None
        keys = (self.lease(process), self.box(process), self.shown(process))
        call = ("outbox_retire", keys, (holder,))
        (left,) = await self._conn.eval_mixed("outbox", [call])
        if int(left) < 0:
            return None
        if int(left) == 0:
            await self._submit([("SREM", self.registry, process)])
            # the process came back just after the script (its lease renewed meanwhile,
            # and its SADD perhaps before that SREM): in the registry again
            if await self._submit([("EXISTS", self.lease(process))]) != [0]:
                await self._submit([("SADD", self.registry, process)])
        return int(left)


def held_ids(commands: Sequence[Command]) -> list[str]:
    """The ids of the decisions the commands of :meth:`DecisionOutboxes.hold` keep.

    >>> held_ids(DecisionOutboxes(None, "m").hold("p1", [("d1", b"{}"), ("d2", b"{}")], 60))
    ['d1', 'd2']
    """
    return [str(d) for c in commands if c[0] == "HSET" for d in c[2::2]]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _raw(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()
