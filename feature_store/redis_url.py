"""The Redis URLs the feature store's connections accept, checked before any is made:
one with an option the store would not honour, or that would be read otherwise than
written, is refused with a message that never quotes the URL (it may hold a password).
"""

from __future__ import annotations

import urllib.parse

from redis.asyncio.connection import parse_url

from feature_store.transport import URL_OPTIONS, RedisAddress

SCHEMES = ("redis", "rediss", "unix")
MAX_DB = 2**31 - 1  # the most Redis's SELECT takes


def check_redis_url(url: str, cluster: bool = False) -> None:
    """Raise :class:`ValueError` saying what is wrong with ``url`` for the store
    (``cluster``: the URL of a Redis Cluster's node), or return.

    >>> check_redis_url("redis://:secret@localhost:6379/2")
    >>> check_redis_url("redis://localhost/2", cluster=True)
    Traceback (most recent call last):
    ...
    ValueError: a Redis Cluster has only database 0
    >>> check_redis_url("unix:///run/redis.sock?socket_timeout=9")
    Traceback (most recent call last):
    ...
    ValueError: Redis URL option socket_timeout is not supported (db, username and password are)
    """
    written = url.partition("://")[0]
    scheme = written.lower()
    if scheme in SCHEMES and written != scheme:
        raise ValueError(f"write its scheme in lower case ({scheme}://)")
    if scheme not in SCHEMES:
        given = scheme + "://" if "://" in url else "one without a scheme"
        raise ValueError(f"it must be a redis://, rediss:// or unix:// URL, not {given}")
    if scheme == "unix":
        if cluster:
            raise ValueError("a Redis Cluster needs a redis:// or rediss:// URL")
        _check_socket_url(url)
        return
    address = RedisAddress.from_url(url)  # as the store's own connection reads it
    _check_host(url)
    if cluster and address.db:
        raise ValueError("a Redis Cluster has only database 0")
    _check_db(address.db)


def _check_host(url: str) -> None:
    """A TCP URL names its host, and a port (when written) from 1 to 65535: an empty one,
    or port 0, would be read as localhost and 6379 (a template whose host was left
    empty). Neither is quoted: the URL may hold a password.

    >>> _check_host("redis://:6379/0")
    Traceback (most recent call last):
    ...
    ValueError: it must name a host (redis://host[:port][/db])
    >>> _check_host("redis://cache:0/0")
    Traceback (most recent call last):
    ...
    ValueError: its port must be from 1 to 65535
    """
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if not host or any(c.isspace() for c in host):
        raise ValueError("it must name a host (redis://host[:port][/db])")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port is not None and not 1 <= port <= 65_535:
        raise ValueError("its port must be from 1 to 65535")


def _check_db(db: int) -> None:
    if not 0 <= db <= MAX_DB:  # SELECT would answer "value is not an integer or out of range"
        raise ValueError(f"its database number must be from 0 to {MAX_DB} (a Redis server "
                         "has 16, 0 to 15, unless its databases setting says more)")  # fmt: skip


def _check_socket_url(url: str) -> None:
    """A ``unix://`` URL's options, as for TCP: ``db``, ``username`` and ``password``
    only (redis-py would take ``socket_timeout`` over the store's timeout, and fail its
    first call on one it does not know). Its user and password come before the ``@``
    that ends them, with no host: one holding an unescaped ``/``, ``?`` or ``#`` would be
    read as part of the socket's path (and shown where the URL is)."""
    parts = urllib.parse.urlsplit(url)
    # a host is ignored (unix://localhost/...), but a socket has no port
    port_given = ":" in parts.netloc.rpartition("@")[2]
    if port_given or not parts.path.startswith("/") or "@" in parts.path:
        raise ValueError(
            "a unix:// URL is unix://[user:password@]/path/to.sock; "
            "percent-encode a '/', '?', '#' or '@' in the user or the password"
        )
    found = parse_url(url)
    unsupported = sorted(set(found) - {"path", "connection_class", *URL_OPTIONS})
    if unsupported:
        raise ValueError(f"Redis URL option {unsupported[0]} is not supported "
                         "(db, username and password are)")  # fmt: skip
    _check_db(int(found.get("db") or 0))
