"""The feature store: a narrow async interface over Redis that hides keys and Lua."""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, cast

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from feature_store.features import CustomerFeatures, features_from_hash
from feature_store.keys import CustomerKeys
from feature_store.updates import feature_updates, recent_item, ts_ms
from schemas import TouchpointEvent

APPLY_LUA = resources.files("feature_store").joinpath("lua/apply.lua").read_text()


class StoreUnavailable(RuntimeError):
    """Redis could not be reached or timed out; the caller should retry later."""


def _unavailable(exc: BaseException) -> StoreUnavailable:
    return StoreUnavailable(f"{type(exc).__name__}: {exc}")


_TRANSIENT = (RedisConnectionError, RedisTimeoutError, OSError)


class ApplyStatus(enum.IntEnum):
    DUPLICATE = 0
    APPLIED = 1
    DUPLICATE_DECIDED = 2  # seen before, and its decision was already emitted


class ErasureReceipt(msgspec.Struct, frozen=True, kw_only=True):
    """What an erasure removed; names the customer only by its keyed hash."""

    subject: str
    keys_removed: int
    kinds: list[str]


@dataclass(frozen=True, slots=True)
class StoreConfig:
    secret: bytes
    prefix: str = "m"
    ttl_s: int = 400 * 86400
    dedupe_horizon_s: int = 8 * 86400
    recent_len: int = 20


Observer = Callable[[str, float], None]


class FeatureStore:
    """Per-customer features in Redis.

    ``apply`` updates many events in one pipelined round trip, each atomically (one
    EVALSHA) and at most once per ``event_id``; ``read`` / ``read_many`` return
    :class:`CustomerFeatures`; ``erase`` removes every key of a customer.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        config: StoreConfig,
        observe: Observer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = client
        self._config = config
        self._keys = CustomerKeys(config.secret, config.prefix)
        self._observe = observe
        self._clock = clock
        self._apply_sha: str | None = None
        self.round_trips = 0
        self.events_applied = 0

    @classmethod
    def from_url(
        cls, url: str, config: StoreConfig, observe: Observer | None = None
    ) -> FeatureStore:
        client = aioredis.Redis.from_url(url, decode_responses=True)
        return cls(client, config, observe)

    def pseudonym(self, customer_id: str) -> str:
        return self._keys.pseudonym(customer_id)

    def _timed(self, op: str, started: float) -> None:
        self.round_trips += 1
        if self._observe is not None:
            self._observe(op, time.perf_counter() - started)

    async def _load_scripts(self) -> str:
        sha = await self._redis.script_load(APPLY_LUA)
        self._apply_sha = str(sha)
        return self._apply_sha

    def _apply_args(self, event: TouchpointEvent, now_ms: int) -> tuple[list[str], list[Any]]:
        keys = self._keys.for_customer(event.customer_id)
        args: list[Any] = [
            event.event_id,
            ts_ms(event),
            now_ms,
            self._config.ttl_s,
            self._config.dedupe_horizon_s * 1000,
            recent_item(event),
            self._config.recent_len,
        ]
        for update in feature_updates(event):
            args.extend(update)
        return list(keys.all()), args

    async def apply(self, events: Sequence[TouchpointEvent]) -> list[ApplyStatus]:
        """Apply events in order; returns, per event, whether it was new or a duplicate."""
        try:
            return await self._apply(events)
        except _TRANSIENT as exc:
            raise _unavailable(exc) from exc

    async def _apply(self, events: Sequence[TouchpointEvent]) -> list[ApplyStatus]:
        if not events:
            return []
        sha = self._apply_sha or await self._load_scripts()
        now_ms = int(self._clock() * 1000)
        calls = [self._apply_args(e, now_ms) for e in events]
        results: list[Any] = [None] * len(calls)
        pending = list(range(len(calls)))
        for _attempt in range(2):
            started = time.perf_counter()
            pipe = self._redis.pipeline(transaction=False)
            for i in pending:
                keys, args = calls[i]
                pipe.evalsha(sha, len(keys), *keys, *args)
            replies = await pipe.execute(raise_on_error=False)
            self._timed("apply", started)
            missing = []
            for i, reply in zip(pending, replies, strict=True):
                if isinstance(reply, NoScriptError):
                    missing.append(i)
                elif isinstance(reply, Exception):
                    raise reply
                else:
                    results[i] = ApplyStatus(int(reply))
            if not missing:
                break
            pending = missing
            sha = await self._load_scripts()
        else:
            raise RuntimeError("Redis keeps losing the feature-store scripts")
        self.events_applied += len(events)
        return results

    async def mark_decided(self, events: Sequence[TouchpointEvent]) -> None:
        """Record that the decisions for these events were emitted (skips them on replay)."""
        if not events:
            return
        started = time.perf_counter()
        now_ms = int(self._clock() * 1000)
        pipe = self._redis.pipeline(transaction=False)
        for event in events:
            pipe.zadd(
                self._keys.for_customer(event.customer_id).seen, {f"d:{event.event_id}": now_ms}
            )
        try:
            await pipe.execute()
        except _TRANSIENT as exc:
            raise _unavailable(exc) from exc
        self._timed("mark_decided", started)

    async def read(self, customer_id: str) -> CustomerFeatures | None:
        """The customer's features, or ``None`` when Moments knows nothing of them."""
        return (await self.read_many([customer_id]))[0]

    async def read_many(self, customer_ids: Sequence[str]) -> list[CustomerFeatures | None]:
        if not customer_ids:
            return []
        started = time.perf_counter()
        pipe = self._redis.pipeline(transaction=False)
        for cid in customer_ids:
            keys = self._keys.for_customer(cid)
            pipe.hgetall(keys.profile)
            pipe.lrange(keys.recent, 0, -1)
        try:
            replies = await pipe.execute()
        except _TRANSIENT as exc:
            raise _unavailable(exc) from exc
        self._timed("read", started)
        out: list[CustomerFeatures | None] = []
        for profile, recent in zip(replies[::2], replies[1::2], strict=True):
            out.append(features_from_hash(profile, recent) if profile else None)
        return out

    async def raw_profile(self, customer_id: str) -> dict[str, str]:
        """The raw profile hash (for tests, rebuild checks and debugging)."""
        result = await self._redis.hgetall(self._keys.for_customer(customer_id).profile)
        return cast(dict[str, str], result)

    async def erase(self, customer_id: str) -> ErasureReceipt:
        """Remove every key of the customer in one call; say what was removed."""
        started = time.perf_counter()
        keys = self._keys.for_customer(customer_id)
        pipe = self._redis.pipeline(transaction=True)
        for key in keys.all():
            pipe.exists(key)
        pipe.delete(*keys.all())
        try:
            replies = await pipe.execute()
        except _TRANSIENT as exc:
            raise _unavailable(exc) from exc
        self._timed("erase", started)
        kinds = [
            k.rsplit(":", 1)[1] for k, present in zip(keys.all(), replies, strict=False) if present
        ]
        return ErasureReceipt(subject=keys.tag, keys_removed=int(replies[-1]), kinds=kinds)

    async def ping(self) -> bool:
        return bool(await self._redis.ping())

    async def close(self) -> None:
        await self._redis.aclose()
