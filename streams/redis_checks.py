"""What the processes check of Redis at start: that it is recent enough, that it will not
evict keys to make room, that it keeps an append-only file (warned of:
:func:`warn_about_redis_setup`), and that it holds this version's key layout and lets
the store's user run what the store needs (:func:`check_redis_layout`)."""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

from redis.exceptions import RedisClusterException, RedisError

from feature_store import (
    UNMARKED,
    FeatureStore,
    LayoutMismatch,
    SecretMismatch,
    StoreRefused,
    StoreUnavailable,
    login_refused,
    no_such_database,
)
from streams.configured import build_store
from streams.settings import Settings, SettingsError

log = logging.getLogger(__name__)
LAYOUT_RETRY_S = 1.0  # how often the layout check asks again a Redis it cannot reach
# what the feature store's Redis user needs, said when Redis refuses one of them
NEEDED = ("its user needs the read, write, keyspace, scripting and connection commands "
          "(ACL +@read +@write +@keyspace +@scripting +@connection), none renamed")  # fmt: skip


OLDEST_REDIS = (7, 0)  # Redis 6 wraps an error met inside a script: see warn_if_redis_is_old


@dataclass(frozen=True)
class RedisSetup:
    """What :func:`warn_about_redis_setup` read of Redis (None: it could not be read)."""

    version: str | None
    eviction_policy: str | None
    append_only: bool | None


async def warn_about_redis_setup(settings: Settings, within_s: float = 5.0) -> RedisSetup:
    """Read Redis's version, eviction policy and persistence over one connection, all
    within ``within_s``, and log what would break Moments' promises; never fails the
    start (Redis may be on its way), unless Redis answers and refuses the URL's login or
    database (:class:`SettingsError`): said first, not after warnings that it could not
    read the version, persistence and eviction policy, which sent operators elsewhere.
    The login check's time counts in ``within_s``: a Redis that takes connections and
    never answers delayed the start twice as long (its PING's time, then the checks')."""
    store = build_store(settings)
    clock = asyncio.get_running_loop().time
    try:
        started = clock()
        await _check_login(settings, store, within_s)
        left = max(0.0, within_s - (clock() - started))
        version, policy, append_only = await asyncio.gather(
            warn_if_redis_is_old(store, left),
            warn_if_redis_evicts(store, left),
            warn_if_redis_forgets(store, left),
        )
    finally:
        await store.close()
    return RedisSetup(version, policy, append_only)


async def _check_login(settings: Settings, store: FeatureStore, within_s: float) -> None:
    """Raise :class:`SettingsError` when Redis refuses the URL's user and password or
    database; anything else (Redis not up yet, say) is left to the checks that follow."""
    try:
        await store.ping(within_s)
    except (StoreUnavailable, RedisError, RedisClusterException) as exc:
        refusal = _refusal(settings, exc)
        if refusal is not None:
            raise refusal from None


def _refusal(settings: Settings, exc: BaseException) -> SettingsError | None:
    """What to stop with when ``exc`` says that Redis refused the URL's login or database,
    which no retry will pass; None for anything else."""
    if no_such_database(exc):
        return _no_such_database()
    if not login_refused(exc):
        return None
    given = (
        "its user and password"
        if _has_password(settings)
        else "to answer without a password, which the URL does not give"
    )
    return SettingsError(f"MOMENTS_REDIS_URL: Redis refused {given} ({exc.__cause__})")


async def warn_if_redis_is_old(store: FeatureStore, within_s: float = 5.0) -> str | None:
    """Log an error when Redis is older than 7.0: Redis 6 wraps an error a script meets (a
    full or read-only Redis among them) as a script error, so an outage reads as bad
    input and its events are dead-lettered rather than waited for. Returns the version
    found (None: it could not be read, which is said too)."""
    found = None
    try:
        async with asyncio.timeout(within_s):
            found = await store.server.oldest_version()
    except TimeoutError:
        pass
    version = None if found is None else ".".join(map(str, found))
    if found is None:
        log.warning("could not read Redis's version (INFO server): Moments needs Redis 7 or "
                    "later")  # fmt: skip
    elif found < OLDEST_REDIS:
        log.error(
            "Redis %s is older than 7.0, which Moments needs: it reports an outage met "
            "inside a script (a full or read-only Redis) as the script's own error, so "
            "touchpoints would be dead-lettered rather than waited for; upgrade Redis",
            version,
        )
    return version


async def warn_if_redis_evicts(store: FeatureStore, within_s: float = 5.0) -> str | None:
    """Log a warning when Redis may evict keys to make room (its ``maxmemory-policy`` is
    not ``noeviction``): an erasure's block, a consent withdrawal kept apart or an
    event's dedupe mark could go, and an erased customer come back or an event count
    twice. Returns the policy (None: it could not be read, which is said too)."""
    policy = None
    try:
        async with asyncio.timeout(within_s):
            policy = await store.server.eviction_policy()
    except TimeoutError:  # unreachable: read as None, as a refusal
        pass
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


async def warn_if_redis_forgets(store: FeatureStore, within_s: float = 5.0) -> bool | None:
    """Log a warning when a Redis node keeps no append-only file: a restart, or a crash,
    takes it back to its last snapshot (or empty), and the erasures, consent withdrawals
    and applied events since are gone with what they protected. Returns whether every
    node keeps one (None: it could not be read, which is said too)."""
    try:
        async with asyncio.timeout(within_s):
            nodes = await store.server.durability()
    except Exception as exc:  # unreachable, INFO refused: a warning, as for the others
        log.warning("could not read whether Redis keeps an append-only file (INFO "
                    "persistence: %s): run it with appendonly yes", type(exc).__name__)  # fmt: skip
        return None
    if any(n.loading for n in nodes.values()):  # it says aof_enabled:0 meanwhile
        log.info("Redis is loading its data: whether it keeps an append-only file is read "
                 "once it has (moments_redis_forgetful)")  # fmt: skip
        return None
    append_only = bool(nodes) and all(n.append_only for n in nodes.values())
    if not append_only:
        log.warning(
            "Redis keeps no append-only file (appendonly no): a restart or crash takes it "
            "back to its last snapshot, and the erasures, consent withdrawals and applied "
            "events since are gone (an erased customer comes back); set appendonly yes"
        )
    return append_only


def _no_such_database() -> SettingsError:
    return SettingsError("MOMENTS_REDIS_URL: Redis has no such database (DB index is out of "
                         "range); Redis numbers its databases from 0")  # fmt: skip


async def check_redis_layout(settings: Settings, within_s: float = 5.0, said: bool = True) -> str:
    """At start: mark a Redis holding no customer yet with this version's layout and key
    secret, raise :class:`feature_store.LayoutMismatch` for one marked with another layout
    (:class:`feature_store.SecretMismatch`: another key secret), and log a warning for one
    holding customers but no mark (written before marks: perhaps in another layout).
    Returns what it found (``marked``, ``marked now``, ``unmarked``, ``unreachable``:
    Redis did not answer within ``within_s``, asked again every second while it cannot be
    reached, or ``unknown``: it refused the check; either is said in a warning, unless not
    ``said``, and the processes then start as they would, checking later an unreachable
    one: :func:`check_layout_once_redis_answers`). Raises :class:`SettingsError` when
    Redis refuses the URL's user and password: that does not pass, and the process would
    only retry for ever."""
    store = build_store(settings)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    try:
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    found = await _check_layout(store)
                    refused = await store.refused_commands()  # may it run what it needs?
                break
            except StoreRefused as exc:
                raise SettingsError(f"MOMENTS_REDIS_URL: Redis refuses a command the feature "
                                    f"store needs ({exc}); {NEEDED}") from None  # fmt: skip
            except StoreUnavailable as exc:  # not up yet (a connection refused fails at once)
                # up, and it refused the login, or the database (on a unix socket,
                # redis-py's own connection)
                if (refusal := _refusal(settings, exc)) is not None:
                    raise refusal from None
                if loop.time() + LAYOUT_RETRY_S >= deadline:
                    raise
                await asyncio.sleep(LAYOUT_RETRY_S)
    except (TimeoutError, StoreUnavailable) as exc:
        if said:
            log.warning("the feature-store layout could not be checked (%s): starting "
                        "without the check, which is made once Redis answers",
                        type(exc).__name__)  # fmt: skip
        return "unreachable"
    # a refusal (an ACL's), or a cluster not formed (redis-py's cluster errors are its own)
    except (RedisError, RedisClusterException) as exc:
        if no_such_database(exc):  # it would never pass
            raise _no_such_database() from None
        if said:
            log.warning("the feature-store layout could not be checked (%s): starting "
                        "without the check", type(exc).__name__)  # fmt: skip
        return "unknown"
    finally:
        await store.close()
    if refused:
        raise SettingsError(f"MOMENTS_REDIS_URL: Redis refuses the feature store's user "
                            f"{', '.join(refused)}; {NEEDED}")  # fmt: skip
    if found == "unmarked":
        log.warning(
            "Redis %s (erasures and exports could miss decision records it kept); rebuild "
            "into an empty Redis to be sure (see Upgrading in docs/operations.md)",
            UNMARKED,
        )
    return found


def _has_password(settings: Settings) -> bool:
    """Whether ``MOMENTS_REDIS_URL`` gives a password.

    >>> _has_password(Settings(redis_url="redis://:s3cret@cache:6379/0"))
    True
    >>> _has_password(Settings(redis_url="redis://cache:6379/0?password=s3cret"))
    True
    >>> _has_password(Settings(redis_url="redis://cache:6379/0"))
    False
    """
    url = urllib.parse.urlsplit(settings.redis_url)
    return bool(url.password) or "password" in urllib.parse.parse_qs(url.query)


async def _check_layout(store: FeatureStore) -> str:
    if await store.layout.check():
        return "marked"
    if not await store.has_any_customer():
        await store.layout.mark()
        await store.layout.check()  # another version may have marked it
        return "marked now"
    return "unmarked"


async def check_layout_once_redis_answers(
    settings: Settings, refused: Callable[[Exception], None]
) -> str:
    """For a process that started without the layout check (Redis could not be reached):
    make it as soon as Redis answers, asking every second. A layout or key secret this
    process must not write with (:class:`feature_store.LayoutMismatch`,
    :class:`feature_store.SecretMismatch`) is logged and handed to ``refused``, which
    stops the process. Returns what the check found."""
    while True:
        await asyncio.sleep(LAYOUT_RETRY_S)
        try:
            found = await check_redis_layout(settings, within_s=LAYOUT_RETRY_S, said=False)
        except (LayoutMismatch, SecretMismatch, SettingsError) as exc:
            log.critical("%s", exc)
            refused(exc)
            return "refused"
        if found == "unknown":
            log.warning("Redis answers now, but refused the feature-store layout check")
        elif found != "unreachable":
            log.info("Redis answers now: its feature-store layout is checked (%s)", found)
        if found != "unreachable":
            return found
