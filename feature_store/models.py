"""Snapshots of the online models, published by the learners and loaded by every worker
and API process, so that all of them score with the same model. Only the newest snapshot
of each model is kept."""

from __future__ import annotations

from feature_store.connection import StoreConnection


class ModelSnapshots:
    """Versioned snapshots, one series per model name; a publish succeeds only on top of
    the version its publisher started from (compare and set).

    Beside the snapshot, a learner may save where it has read its topic to when the
    records since its last snapshot taught nothing: the model and its version stay, and a
    restarted learner does not read those records again.
    """

    def __init__(self, conn: StoreConnection, prefix: str) -> None:
        self._conn = conn
        self._prefix = prefix

    def _key(self, name: str) -> str:
        return f"{self._prefix}:model:{{{name}}}"

    async def load(self, name: str) -> tuple[int, str] | None:
        """The newest snapshot of a model: (version, payload)."""
        pipe = self._conn.pipeline()
        pipe.hmget(self._key(name), ["version", "payload"])
        ((version, payload),) = await self._conn.execute("model", pipe)
        return None if version is None else (int(version), str(payload))

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
        call = ((self._key(name),), [expected, payload, positions])
        (new,) = await self._conn.eval_many("publish", "publish", [call])
        return None if int(new) < 0 else int(new)
