"""Snapshots of the online models, published by the learners and loaded by every worker
and API process, so that all of them score with the same model."""

from __future__ import annotations

from feature_store.connection import StoreConnection

HISTORY_TTL_S = 86400  # each version is also kept on its own for a day


class ModelSnapshots:
    """Versioned snapshots, one series per model name; a publish succeeds only on top of
    the version its publisher started from (compare and set)."""

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
        key = self._key(name)
        call = ((key, f"{key}:v{expected_version + 1}"), [expected_version, payload, HISTORY_TTL_S])
        (new,) = await self._conn.eval_many("publish", "publish", [call])
        return None if int(new) < 0 else int(new)
