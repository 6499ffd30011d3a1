"""The feature store: a narrow async interface over Redis that hides keys and Lua."""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from feature_store.derived import SegmentThresholds
from feature_store.facts import RESOLUTIONS, Fact, touchpoint_fact
from feature_store.features import CustomerFeatures, build_features
from feature_store.keys import KEY_KINDS, CustomerKeys
from schemas import TouchpointEvent

APPLY_LUA = resources.files("feature_store").joinpath("lua/apply.lua").read_text()
_RESOLUTION_ARGS: list[Any] = [len(RESOLUTIONS)]
for _r in RESOLUTIONS:
    _RESOLUTION_ARGS += [_r.name, _r.size_ms, _r.keep]


class StoreUnavailable(RuntimeError):
    """Redis could not be reached or timed out; the caller should retry later."""


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
    ttl_s: int = 400 * 86400  # keys expire after this long without a fact
    dedupe_horizon_s: int = 8 * 86400  # keep above the touchpoints topic's retention
    recent_len: int = 20
    thresholds: SegmentThresholds = field(default_factory=SegmentThresholds)
    half_life_days: float = 14.0


Observer = Callable[[str, float], None]


class FeatureStore:
    """Per-customer features in Redis (a single server or a Redis Cluster).

    ``apply`` updates many events in one pipelined round trip, each atomically (one
    EVALSHA) and at most once per ``event_id``; ``record`` does the same for contacts
    Moments made; ``read`` / ``read_many`` return :class:`CustomerFeatures`; ``erase``
    removes every key of a customer.
    """

    def __init__(
        self,
        client: aioredis.Redis | aioredis.RedisCluster,
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
        self.facts_applied = 0

    @classmethod
    def from_url(
        cls,
        url: str,
        config: StoreConfig,
        observe: Observer | None = None,
        cluster: bool = False,
    ) -> FeatureStore:
        client: aioredis.Redis | aioredis.RedisCluster
        if cluster:
            client = aioredis.RedisCluster.from_url(url, decode_responses=True)
        else:
            client = aioredis.Redis.from_url(url, decode_responses=True)
        return cls(client, config, observe)

    def pseudonym(self, customer_id: str) -> str:
        return self._keys.pseudonym(customer_id)

    async def _execute(self, op: str, pipe: Any, raise_on_error: bool = True) -> list[Any]:
        started = time.perf_counter()
        try:
            replies: list[Any] = await pipe.execute(raise_on_error=raise_on_error)
        except _TRANSIENT as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc
        self.round_trips += 1
        if self._observe is not None:
            self._observe(op, time.perf_counter() - started)
        return replies

    async def _load_scripts(self) -> str:
        try:
            sha = await self._redis.script_load(APPLY_LUA)
        except _TRANSIENT as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc
        self._apply_sha = str(sha)
        return self._apply_sha

    def _call(self, fact: Fact, now_ms: int) -> tuple[tuple[str, ...], list[Any]]:
        k = self._keys.for_customer(fact.customer_id)
        keys = (k.profile, k.contacts if fact.contact else k.windows, k.seen, k.recent)
        args: list[Any] = [
            fact.fact_id,
            fact.ts_ms,
            now_ms,
            self._config.ttl_s,
            self._config.dedupe_horizon_s * 1000,
            fact.recent or "",
            self._config.recent_len,
            *_RESOLUTION_ARGS,
        ]
        for update in fact.updates:
            args.extend(update)
        return keys, args

    async def apply(self, events: Sequence[TouchpointEvent]) -> list[ApplyStatus]:
        """Apply touchpoints in order; per event, whether it was new or a duplicate."""
        return await self.apply_facts([touchpoint_fact(e) for e in events])

    async def apply_facts(self, facts: Sequence[Fact]) -> list[ApplyStatus]:
        """Apply facts in order, in one round trip (plus one if Redis lost the script)."""
        if not facts:
            return []
        sha = self._apply_sha or await self._load_scripts()
        now_ms = int(self._clock() * 1000)
        calls = [self._call(f, now_ms) for f in facts]
        results: list[ApplyStatus | None] = [None] * len(calls)
        pending = list(range(len(calls)))
        for _attempt in range(3):
            pipe = self._redis.pipeline(transaction=False)
            for i in pending:
                keys, args = calls[i]
                pipe.execute_command("EVALSHA", sha, len(keys), *keys, *args)
            replies = await self._execute("apply", pipe, raise_on_error=False)
            missing = []
            for i, reply in zip(pending, replies, strict=True):
                if isinstance(reply, NoScriptError):
                    missing.append(i)
                elif isinstance(reply, _TRANSIENT):
                    raise StoreUnavailable(f"{type(reply).__name__}: {reply}")
                elif isinstance(reply, Exception):
                    raise reply
                else:
                    results[i] = ApplyStatus(int(reply))
            if not missing:
                break
            pending = missing
            sha = await self._load_scripts()
        else:
            raise RuntimeError("Redis keeps losing the feature-store script")
        self.facts_applied += len(facts)
        return [r for r in results if r is not None]

    async def mark_decided(self, events: Sequence[tuple[str, str]]) -> None:
        """Record that decisions for these (customer id, event id) pairs were emitted,
        so that a replay of the events does not decide them again."""
        if not events:
            return
        now_ms = int(self._clock() * 1000)
        pipe = self._redis.pipeline(transaction=False)
        for customer_id, event_id in events:
            seen = self._keys.for_customer(customer_id).seen
            pipe.zadd(seen, {f"d:t:{event_id}": now_ms})
        await self._execute("mark_decided", pipe)

    async def read(self, customer_id: str, now: float | None = None) -> CustomerFeatures | None:
        """The customer's features as of ``now`` (default: the clock), or ``None``."""
        return (await self.read_many([customer_id], now))[0]

    async def read_many(
        self, customer_ids: Sequence[str], now: float | None = None
    ) -> list[CustomerFeatures | None]:
        if not customer_ids:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for cid in customer_ids:
            keys = self._keys.for_customer(cid)
            pipe.hgetall(keys.profile)
            pipe.hgetall(keys.windows)
            pipe.zrange(keys.recent, 0, -1)
            pipe.hgetall(keys.contacts)
        replies = await self._execute("read", pipe)
        now_ms = int((self._clock() if now is None else now) * 1000)
        out: list[CustomerFeatures | None] = []
        for i in range(0, len(replies), 4):
            profile, windows, recent, contacts = replies[i : i + 4]
            out.append(
                build_features(
                    profile,
                    windows,
                    recent,
                    now_ms,
                    contacts,
                    self._config.thresholds,
                    self._config.half_life_days,
                )
                if profile
                else None
            )
        return out

    async def raw(self, customer_id: str) -> dict[str, Any]:
        """The customer's raw keys (profile, windows, recent, contacts) for checks."""
        keys = self._keys.for_customer(customer_id)
        pipe = self._redis.pipeline(transaction=False)
        pipe.hgetall(keys.profile)
        pipe.hgetall(keys.windows)
        pipe.zrange(keys.recent, 0, -1, withscores=True)
        pipe.hgetall(keys.contacts)
        pipe.zrange(keys.seen, 0, -1)
        profile, windows, recent, contacts, seen = await self._execute("raw", pipe)
        return {
            "profile": profile,
            "windows": windows,
            "recent": {member: int(score) for member, score in recent},
            "contacts": contacts,
            "seen": sorted(seen),
        }

    async def erase(self, customer_id: str) -> ErasureReceipt:
        """Remove every key of the customer in one round trip; say what was removed."""
        keys = self._keys.for_customer(customer_id)
        pipe = self._redis.pipeline(transaction=False)
        for key in keys.all():
            pipe.delete(key)
        replies = await self._execute("erase", pipe)
        kinds = [kind for kind, removed in zip(KEY_KINDS, replies, strict=True) if removed]
        return ErasureReceipt(subject=keys.tag, keys_removed=sum(replies), kinds=kinds)

    async def has_any_customer(self) -> bool:
        """Whether any key of this store's prefix exists (on every node of a cluster)."""
        pattern = f"{self._config.prefix}:{{*"
        async for _ in self._redis.scan_iter(match=pattern, count=1000):
            return True
        return False

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except _TRANSIENT as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        await self._redis.aclose()
