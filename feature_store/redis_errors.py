"""How the feature store reads Redis's errors.

Every Redis error that means "Redis cannot serve now" (a lost connection, a timeout, a
server still loading its data, a replica after a failover, a full or busy server, a
cluster in flux) comes out of here as :class:`~feature_store.records.StoreUnavailable`,
so that callers answer with a fallback or wait and retry, and every other error, which
says that the call itself was wrong, as it is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from redis.exceptions import (
    AuthenticationError,
    ClusterError,
    NoPermissionError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from feature_store.records import StoreFull, StoreRefused, StoreUnavailable
from feature_store.transport import NotSent

TRANSIENT = (
    RedisConnectionError, RedisTimeoutError, OSError, ReadOnlyError, OutOfMemoryError,
    # a cluster in flux: CLUSTERDOWN and MASTERDOWN replies, redirections that never
    # settled ("TTL exhausted"), TRYAGAIN replies, a slot no node serves yet
    ClusterError, TryAgainError, SlotNotCoveredError,
)  # fmt: skip
# Error replies of a server that cannot serve now, by their first word (redis-py's own
# connections strip the word from the errors it has classes for, listed in TRANSIENT).
NOT_NOW = frozenset({
    "LOADING", "READONLY", "MASTERDOWN", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "OOM",
    "NOREPLICAS", "MISCONF",
})  # fmt: skip
FULL = "ERR max number of clients reached"  # what a full server says, and hangs up
# What redis-py's cluster client says, in an error of its own, when no node it knows can
# be reached or the nodes do not yet agree on who serves which slots (its other errors of
# that class are calls it cannot route: a bad call, not a cluster in flux).
CLUSTER_NOT_REACHED = (
    "Redis Cluster cannot be connected", "startup_nodes could not agree",
    "All slots are not covered", "No targets were found",
)  # fmt: skip


# How Redis says it refuses a command, sent or called by a script (7.0, then 7.2 on), or
# a new connection's login (a password it does not have, or not this one)
REFUSALS = (
    "NOPERM ", "unknown command ", "The user executing the script can't run this command",
    "The user executing the script can't access at least one of the keys",
    "ACL failure in script", "Unknown Redis command called from script",
    "AUTH <password> called without any password configured", "WRONGPASS ",
)  # fmt: skip


def refused(exc: BaseException) -> bool:
    """Whether ``exc`` says that Redis refuses the command itself: no permission for it,
    or no such command (renamed away). Not the call's fault: the server's set-up.

    >>> from redis.exceptions import NoPermissionError
    >>> refused(NoPermissionError("this user has no permissions to run the 'evalsha' command"))
    True
    >>> refused(ResponseError("NOPERM this user has no permissions to run the 'get' command"))
    True
    >>> refused(ResponseError("unknown command 'SCRIPT', with args beginning with: 'LOAD'"))
    True
    >>> refused(ResponseError("The user executing the script can't run this command or "
    ...                       "subcommand script: 70124, on @user_script:12."))
    True
    >>> refused(ResponseError("ERR value is not an integer or out of range"))
    False
    """
    if isinstance(exc, NoPermissionError):
        return True
    if isinstance(exc, RedisConnectionError) and exc.__cause__ is not None:
        return refused(exc.__cause__)  # a new connection's handshake (its PING) refused
    if not isinstance(exc, ResponseError):
        return False
    text = str(exc).removeprefix("ERR ")
    return text.startswith(REFUSALS)


def transient(exc: BaseException) -> bool:
    """Whether ``exc`` says that Redis cannot serve now, not that the call was wrong (a
    refusal of the command itself, :func:`refused`, is waited out too).

    >>> transient(ResponseError("LOADING Redis is loading the dataset in memory"))
    True
    >>> transient(ResponseError("ERR value is not an integer or out of range"))
    False
    >>> from redis.exceptions import ClusterDownError
    >>> transient(ClusterDownError("The cluster is down"))  # redis-py strips the first word
    True
    >>> transient(ResponseError("ERR max number of clients reached"))
    True
    >>> transient(RedisClusterException("Redis Cluster cannot be connected. Please ..."))
    True
    >>> transient(RedisClusterException("EVALSHA - all keys must map to the same key slot"))
    False
    """
    if isinstance(exc, TRANSIENT):
        return True
    if isinstance(exc, RedisClusterException):
        return str(exc).startswith(CLUSTER_NOT_REACHED)
    if not isinstance(exc, ResponseError):
        return False
    text = str(exc)
    return text.split(" ", 1)[0] in NOT_NOW or text.startswith(FULL) or refused(exc)


# Redis's answer to a SELECT of a database it does not have
NO_SUCH_DATABASE = "DB index is out of range"


def login_refused(exc: BaseException) -> bool:
    """Whether ``exc`` (a :class:`StoreUnavailable`) came from Redis refusing the user and
    password: Redis is up, and the login will not pass however often it is tried.

    >>> from redis.exceptions import AuthenticationError
    >>> failed = StoreUnavailable("AuthenticationError: invalid username-password pair")
    >>> failed.__cause__ = AuthenticationError("invalid username-password pair")
    >>> login_refused(failed), login_refused(StoreUnavailable("connection refused"))
    (True, False)
    >>> on_a_cluster = StoreUnavailable("RedisClusterException: cannot be connected")
    >>> on_a_cluster.__cause__ = RedisClusterException("Redis Cluster cannot be connected")
    >>> on_a_cluster.__cause__.__cause__ = failed.__cause__  # redis-py's wrapping
    >>> login_refused(on_a_cluster)
    True
    """
    return any(isinstance(cause, AuthenticationError) for cause in _chain(exc))


def no_such_database(exc: BaseException) -> bool:
    """Whether ``exc`` came from Redis answering that the URL's database is not one it has
    (its reply to SELECT, however redis-py's connection or the store's wrapped it).

    >>> failed = StoreUnavailable("ConnectionError: DB index is out of range")
    >>> failed.__cause__ = ConnectionError("DB index is out of range")
    >>> no_such_database(failed), no_such_database(StoreUnavailable("connection refused"))
    (True, False)
    """
    return any(str(cause).startswith(NO_SUCH_DATABASE) for cause in _chain(exc))


def _not_connected(exc: BaseException) -> bool:
    """Whether ``exc`` is how redis-py's own connections (a cluster's) say that they could
    not connect ("Error 111 connecting to ...", "Timeout connecting to server")."""
    text = str(exc)
    return isinstance(exc, (RedisConnectionError, RedisTimeoutError)) and (
        text.startswith("Timeout connecting to")
        or (text.startswith("Error ") and " connecting to " in text)
    )


def may_have_run(exc: BaseException) -> bool:
    """Whether the commands of a call that failed with ``exc`` may have run in Redis all
    the same: they were written, and the connection timed out or went before their
    replies came (a frozen server, a dropped connection). Not when Redis could not be
    reached (refused, no route, a login refused) nor when it answered with an error
    (loading, full, a replica): it did not run them.

    >>> from redis.exceptions import TimeoutError as RedisTimeoutError
    >>> from feature_store.transport import RepliesLost
    >>> def failed(cause: BaseException) -> StoreUnavailable:
    ...     wrapped = StoreUnavailable(str(cause))
    ...     wrapped.__cause__ = cause
    ...     return wrapped
    >>> may_have_run(failed(RedisTimeoutError("no reply from Redis in 5s")))
    True
    >>> may_have_run(failed(RepliesLost("the connection to Redis was lost", [])))
    True
    >>> may_have_run(failed(NotSent("cannot connect to Redis: ConnectionRefusedError()")))
    False
    >>> may_have_run(failed(RedisConnectionError("Error 111 connecting to 127.0.0.1:1. "
    ...                                          "Connection refused.")))
    False
    >>> may_have_run(failed(RedisTimeoutError("Timeout connecting to server")))
    False
    >>> may_have_run(failed(ReadOnlyError("You can't write against a read only replica.")))
    False
    >>> may_have_run(StoreUnavailable("LOADING Redis is loading the dataset in memory"))
    False
    """
    chain = list(_chain(exc))
    if any(may_have_run(e) for cause in chain for e in getattr(cause, "earlier", ())):
        return True  # an earlier attempt redis-py retried may have run
    if any(isinstance(cause, NotSent) or _not_connected(cause) for cause in chain):
        return False
    lost = (RedisTimeoutError, RedisConnectionError, TimeoutError, ConnectionError)
    return any(isinstance(cause, lost) for cause in chain)


def _chain(exc: BaseException, deepest: int = 10) -> Iterator[BaseException]:
    """``exc``, then what it was raised from (or while handling), however deep redis-py
    wrapped it (``deepest`` levels at most)."""
    seen: BaseException | None = exc
    for _ in range(deepest + 1):
        if seen is None:
            return
        yield seen
        seen = seen.__cause__ or seen.__context__


def unavailable(exc: BaseException, said: str | None = None) -> StoreUnavailable:
    """``exc`` as :class:`StoreUnavailable` (:class:`StoreRefused` for a refusal), saying
    ``said`` or else its kind and message."""
    kind = StoreRefused if refused(exc) else StoreFull if takes_no_writes(exc) else StoreUnavailable
    return kind(f"{type(exc).__name__}: {exc}" if said is None else said)


def takes_no_writes(exc: BaseException) -> bool:
    """Whether ``exc`` says that Redis answers but takes no writes (full, or a replica).

    >>> takes_no_writes(ResponseError("OOM command not allowed when used memory > 'maxmemory'."))
    True
    >>> takes_no_writes(ReadOnlyError("You can't write against a read only replica."))
    True
    >>> takes_no_writes(ResponseError("ERR value is not an integer or out of range"))
    False
    """
    if isinstance(exc, (OutOfMemoryError, ReadOnlyError)):
        return True
    return isinstance(exc, ResponseError) and str(exc).startswith(("OOM ", "READONLY "))


@contextlib.contextmanager
def unavailable_when_transient() -> Iterator[None]:
    """Raise a Redis error that says Redis cannot serve now as :class:`StoreUnavailable`
    (see :func:`transient`), any other as it is."""
    try:
        yield
    except (*TRANSIENT, ResponseError, RedisClusterException) as exc:
        if transient(exc):
            raise unavailable(exc) from exc
        raise


def raise_failed(replies: Sequence[Any]) -> None:
    """Raise the first error among a round trip's replies (a transient one as
    :class:`StoreUnavailable`)."""
    for reply in replies:
        if isinstance(reply, Exception):
            raise unavailable(reply, str(reply)) if transient(reply) else reply


def raise_unavailable(replies: Sequence[Any]) -> None:
    """Raise the first error among a round trip's replies that says Redis cannot serve
    now, as :class:`StoreUnavailable`; the others are the calls' own faults."""
    for reply in replies:
        if isinstance(reply, Exception) and transient(reply):
            raise unavailable(reply, str(reply))
