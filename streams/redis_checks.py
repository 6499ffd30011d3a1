"""What the processes check of Redis at start: that it will not evict keys to make room,
and that it holds this version's key layout."""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import AuthenticationError, RedisClusterException, RedisError

from feature_store import UNMARKED, StoreUnavailable
from streams.app import build_store
from streams.settings import Settings, SettingsError

log = logging.getLogger(__name__)
LAYOUT_RETRY_S = 1.0  # how often the layout check asks again a Redis it cannot reach


async def warn_if_redis_evicts(settings: Settings, within_s: float = 5.0) -> str | None:
    """Log a warning when Redis may evict keys to make room (its ``maxmemory-policy`` is
    not ``noeviction``): an erasure's block, a consent withdrawal kept apart or an
    event's dedupe mark could go, and an erased customer come back or an event count
    twice. Returns the policy (None: it could not be read, which is said too); never
    fails the start (Redis may be on its way)."""
    store = build_store(settings)
    policy = None
    try:
        async with asyncio.timeout(within_s):
            policy = await store.server.eviction_policy()
    except TimeoutError:  # unreachable: read as None, as a refusal
        pass
    finally:
        await store.close()
    if policy is None:
        log.warning(
            "could not read Redis's maxmemory-policy (neither INFO nor CONFIG answered): "
            "make sure it is noeviction, or an erasure's block, a consent withdrawal or an "
            "event's dedupe mark could be evicted when Redis is full"
        )
    elif policy != "noeviction":
        log.warning(
            "Redis may evict keys when it is full (maxmemory-policy %s): an erasure's "
            "block, a consent withdrawal or an event's dedupe mark could go with them; "
            "set maxmemory-policy noeviction (Moments then waits out a full Redis)",
            policy,
        )
    return policy


async def check_redis_layout(settings: Settings, within_s: float = 5.0) -> str:
    """At start: mark a Redis holding no customer yet with this version's layout, raise
    :class:`feature_store.LayoutMismatch` for one marked with another, and log a warning
    for one holding customers but no mark (written before marks: perhaps in another
    layout). Returns what it found (``marked``, ``marked now``, ``unmarked`` or
    ``unknown``: Redis did not answer within ``within_s``, asked again every second while
    it cannot be reached, or refused the check; said in a warning, and the processes then
    start as they would). Raises :class:`SettingsError` when Redis refuses the URL's user
    and password: that does not pass, and the process would only retry for ever."""
    store = build_store(settings)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    try:
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    if await store.layout.check():
                        return "marked"
                    if not await store.has_any_customer():
                        await store.layout.mark()
                        await store.layout.check()  # another version may have marked it
                        return "marked now"
                break
            except StoreUnavailable as exc:  # not up yet (a connection refused fails at once)
                if isinstance(exc.__cause__, AuthenticationError):  # up, and it refused us
                    raise SettingsError(
                        f"MOMENTS_REDIS_URL: Redis refused its user and password ({exc.__cause__})"
                    ) from None
                if loop.time() + LAYOUT_RETRY_S >= deadline:
                    raise
                await asyncio.sleep(LAYOUT_RETRY_S)
    # a refusal (an ACL's), or a cluster not formed (redis-py's cluster errors are its own)
    except (TimeoutError, StoreUnavailable, RedisError, RedisClusterException) as exc:
        log.warning("the feature-store layout could not be checked (%s): starting "
                    "without the check", type(exc).__name__)  # fmt: skip
        return "unknown"
    finally:
        await store.close()
    log.warning(
        "Redis %s (erasures and exports could miss decision records it kept); rebuild "
        "into an empty Redis to be sure (see Upgrading in the README)",
        UNMARKED,
    )
    return "unmarked"
