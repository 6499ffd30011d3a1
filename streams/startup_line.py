"""The line a worker or API process logs as it starts: what an operator needs to know it
is the one they meant to run (its version, where its Kafka and Redis are, its prefixes,
policy and catalogue), with no password.

>>> line = startup_line("worker", Settings(redis_url="rediss://app:s3cret@cache:6380/0"))
>>> "s3cret" in line, "rediss://app:***@cache:6380/0" in line
(False, True)
"""

from __future__ import annotations

import importlib.metadata
import urllib.parse

from streams.settings import Settings


def without_password(url: str) -> str:
    """``url`` as it may be shown: a password in it (or in its query) is ``***``, and so
    is a user name without a password (most likely a password written without its ``:``).

    >>> without_password("rediss://app:s3cret@cache:6380/0")
    'rediss://app:***@cache:6380/0'
    >>> without_password("redis://cache:6379/0?username=app&password=s3cret")
    'redis://cache:6379/0?username=app&password=***'
    >>> without_password("redis://127.0.0.1:6379/0")
    'redis://127.0.0.1:6379/0'
    >>> without_password("redis://app:4711#s3cret@cache:6379/0")  # refused by the settings
    'redis://app:4711'
    >>> without_password("redis://s3cret@cache:6379/0")
    'redis://***@cache:6379/0'
    """
    parts = urllib.parse.urlsplit(url)._replace(fragment="")  # a misread password, maybe
    if parts.password is not None:
        host = parts.netloc.rpartition("@")[2]
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
    elif parts.username is not None:
        parts = parts._replace(netloc=f"***@{parts.netloc.rpartition('@')[2]}")
    if parts.query:
        query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        shown = [(k, "***" if k.lower() == "password" else v) for k, v in query]
        parts = parts._replace(query=urllib.parse.urlencode(shown, safe="*"))
    return urllib.parse.urlunsplit(parts)


def version() -> str:
    try:
        return importlib.metadata.version("moments")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout not installed
        return "unknown"


def startup_line(role: str, settings: Settings) -> str:
    """What the ``role`` process runs with."""
    cluster = " (cluster)" if settings.redis_cluster else ""
    return (
        f"Moments {version()} {role}: Kafka {settings.kafka_bootstrap}"
        f" ({settings.kafka_security_protocol.upper()}), Redis"
        f" {without_password(settings.redis_url)}{cluster}, topic prefix"
        f" {settings.topic_prefix or '(none)'}, Redis prefix {settings.redis_prefix}, app id"
        f" {settings.app_id}, policy {settings.policy}, catalogue {settings.catalogue_path}"
    )
