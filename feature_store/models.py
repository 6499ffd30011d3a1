"""Snapshots of the online models, published by the learners and loaded by every worker
and API process, so that all of them score with the same model. Only the newest snapshot
of each model is kept."""

from __future__ import annotations

import hashlib
import time
import zlib
from collections.abc import Callable, Sequence
from typing import Literal

from feature_store.connection import StoreConnection
from feature_store.pipelining import Command
from feature_store.redis_errors import raise_failed

# what became of an example's claim: "new" (claimed now), "again" (claimed before by
# this same record: read again), "copy" (claimed by another record: already learned)
ExampleClaim = Literal["new", "again", "copy"]
_EXAMPLE_CLAIMS: dict[int, ExampleClaim] = {1: "new", 3: "again", 0: "copy"}
CLAIM_SHARDS = 16  # example claims are spread over this many keys (cluster slots)


class SnapshotDamaged(ValueError):
    """A snapshot that is not the one its learner published."""


def payload_digest(payload: str) -> str:
    """What a snapshot is checked against when loaded (BLAKE2b, 128 bits, in hex).

    >>> payload_digest('{"model": {}}')
    '941e28cceae9182b5212d3e19ab03d42'
    """
    return hashlib.blake2b(payload.encode(), digest_size=16).hexdigest()


class ModelSnapshots:
    """Versioned snapshots, one series per model name; a publish succeeds only on top of
    the version its publisher started from (compare and set).

    Beside the snapshot, a learner may save where it has read its topic to when the
    records since its last snapshot taught nothing: the model and its version stay, and a
    restarted learner does not read those records again.

    A learner whose examples may be sent twice claims each example id, with the record it
    came from, before learning it (:meth:`claim_examples`); the claims are kept
    ``claims_kept_s`` seconds, in keys of the model's, not of any customer's.
    """

    def __init__(
        self,
        conn: StoreConnection,
        prefix: str,
        claims_kept_s: int = 8 * 86400,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._conn = conn
        self._prefix = prefix
        self._claims_kept_s = claims_kept_s
        self._clock = clock

    def _key(self, name: str) -> str:
        return f"{self._prefix}:model:{{{name}}}"

    async def load(self, name: str) -> tuple[int, str] | None:
        """The newest snapshot of a model: (version, payload); :class:`SnapshotDamaged`
        when the payload is not the one published (its digest, kept beside it, differs:
        damaged in storage, or edited by hand)."""
        pipe = self._conn.pipeline()
        pipe.hmget(self._key(name), ["version", "payload", "digest"])
        ((version, payload, kept),) = await self._conn.execute("model", pipe)
        if version is None:
            return None
        found = (int(version), str(payload))
        if kept is not None:  # none before digests, or from a publisher older than them
            at, _, digest = str(kept).partition(":")
            if at == str(found[0]) and digest != payload_digest(found[1]):
                raise SnapshotDamaged(f"the {name} model's snapshot {found[0]} does not match "
                                      "the digest it was published with")  # fmt: skip
        return found

    async def discard(self, name: str) -> None:
        """Drop the snapshot of a model (and its positions): its learner starts a new
        series, as after Redis lost its data."""
        pipe = self._conn.pipeline()
        pipe.delete(self._key(name))
        await self._conn.execute("model", pipe)

    async def version(self, name: str) -> int:
        """The newest version of a model (0 before the first publish)."""
        pipe = self._conn.pipeline()
        pipe.hget(self._key(name), "version")
        (version,) = await self._conn.execute("model", pipe)
        return int(version or 0)

    async def publish(self, name: str, expected_version: int, payload: str) -> int | None:
        """Publish a snapshot; the new version, or None if someone else published first."""
        if not payload:
            raise ValueError("a model snapshot cannot be empty")
        return await self._publish(name, expected_version, payload, "")

    async def save_positions(self, name: str, version: int, positions: str) -> bool:
        """Keep ``positions`` (the learner's, past records that taught nothing) with the
        snapshot ``version``; False if someone else published meanwhile."""
        return await self._publish(name, version, "", positions) is not None

    async def positions(self, name: str, version: int) -> str | None:
        """The positions saved with snapshot ``version`` (0: before any), if any."""
        pipe = self._conn.pipeline()
        pipe.hmget(self._key(name), ["version", "positions", "positions_at"])
        ((current, positions, at),) = await self._conn.execute("model", pipe)
        if positions is None or int(current or 0) != version or int(at or -1) != version:
            return None
        return str(positions)

    async def _publish(self, name: str, expected: int, payload: str, positions: str) -> int | None:
        digest = payload_digest(payload) if payload else ""
        call = ((self._key(name),), [expected, payload, positions, digest])
        (new,) = await self._conn.eval_many("publish", "publish", [call])
        return None if int(new) < 0 else int(new)

    async def claim_examples(
        self, name: str, claims: Sequence[tuple[str, str]]
    ) -> list[ExampleClaim]:
        """Claim (example id, source record) pairs for the learner of model ``name``, in
        order, in one round trip: ``"new"`` for an example to learn (claimed now),
        ``"again"`` for one claimed before by this same record (a learner restarted from
        a snapshot that lacks it reads it again: learn it again), ``"copy"`` for one
        claimed by another record (sent twice: learned already, or to be learned from that
        record). A claim is kept ``claims_kept_s`` seconds, then dropped."""
        if not claims:
            return []
        shards: dict[int, list[int]] = {}
        for i, (example_id, _) in enumerate(claims):
            shards.setdefault(zlib.crc32(example_id.encode()) % CLAIM_SHARDS, []).append(i)
        now_ms = int(self._clock() * 1000)
        calls = []
        for shard, positions in shards.items():
            tag = f"{{{name}:{shard}}}"  # a shard's two keys share a slot
            keys = (f"{self._prefix}:claims:{tag}", f"{self._prefix}:claimt:{tag}")
            pairs = [part for i in positions for part in claims[i]]
            calls.append((keys, [self._claims_kept_s, now_ms, *pairs]))
        replies = await self._conn.eval_many("claim_examples", "claim_examples", calls)
        found: list[ExampleClaim] = ["copy"] * len(claims)
        for positions, reply in zip(shards.values(), replies, strict=True):
            for i, code in zip(positions, reply, strict=True):
                found[i] = _EXAMPLE_CLAIMS[int(code)]
        return found

    async def unclaim_examples(self, name: str, example_ids: Sequence[str]) -> None:
        """Drop the claims of ``example_ids`` for the learner of model ``name``, in one
        round trip (none for none): those of customers erased while they were claimed,
        so that no claim naming them (by their keyed hash) is kept after the erasure."""
        commands: list[Command] = []
        for example_id in example_ids:
            tag = f"{{{name}:{zlib.crc32(example_id.encode()) % CLAIM_SHARDS}}}"
            commands.append(("HDEL", f"{self._prefix}:claims:{tag}", example_id))
            commands.append(("ZREM", f"{self._prefix}:claimt:{tag}", example_id))
        if commands:
            raise_failed(await self._conn.submit(commands))
