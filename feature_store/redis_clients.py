"""The redis-py clients the feature store talks to Redis with: timeouts, keepalive, and
one retry that remembers what it retried."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from feature_store.transport import RedisPipe, keepalive_options


class NotingRetry(Retry):
    """redis-py's retry, whose error, when the retry fails too, names the first
    attempt's (``earlier``): a call written and its connection lost, then the retry's
    connect refused, is still one that may have run."""

    async def call_with_retry(self, do: Any, fail: Any, *args: Any, **kwargs: Any) -> Any:
        errors: list[Exception] = []

        async def noted(error: Exception, *count: Any) -> Any:
            errors.append(error)
            return await fail(error, *count)

        try:
            return await super().call_with_retry(do, noted, *args, **kwargs)
        except Exception as exc:
            exc.earlier = tuple(e for e in errors if e is not exc)  # type: ignore[attr-defined]
            raise


def redis_clients(
    url: str, cluster: bool, ssl_ca_certs: str | None, timeout_s: float
) -> tuple[aioredis.Redis | aioredis.RedisCluster, RedisPipe | None]:
    """redis-py's client on ``url`` (a cluster's with ``cluster``), and the pipelined
    connection of the hot path to a single server over TCP (none on a cluster or a unix
    socket), as :meth:`~feature_store.store.FeatureStore.from_url` makes them."""
    client: aioredis.Redis | aioredis.RedisCluster
    tls: dict[str, Any] = {"ssl_ca_certs": ssl_ca_certs} if ssl_ca_certs else {}
    # a reply that does not come in time is an outage (a connection dropped silently,
    # a frozen server), not a wait without end; keepalive finds dead idle connections
    options: dict[str, Any] = {
        "decode_responses": True,
        # a value that is not UTF-8 (another client's, or corrupted) reads with U+FFFD
        # where its bad bytes were, so that it fails its own use (a context that is no
        # JSON, a field that is no number): strict, it failed every call of the round
        # trip, as the pipe's per-call error (transport.py) keeps it from doing there
        "encoding_errors": "replace",
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        # one retry of a call that timed out or lost its connection (a connection the
        # server closed while idle, a cluster whose nodes moved): redis-py's own 3, and
        # its cluster client's 10, held a call on a frozen node 78 s, not ``timeout_s``
        "retry": NotingRetry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=1),
    }
    if cluster or url.startswith(("redis://", "rediss://")):  # TCP (not a unix socket)
        options |= {"socket_keepalive": True, "socket_keepalive_options": keepalive_options()}
    if cluster:
        client = aioredis.RedisCluster.from_url(url, **options, **tls)
    else:  # the less frequent calls (models, erasure, profile pages, sweeps)
        plain_tcp = url.startswith("redis://")  # no TLS options on a plain connection
        client = aioredis.Redis.from_url(url, **options, **({} if plain_tcp else tls))
    plain = not cluster and url.startswith(("redis://", "rediss://"))
    pipe = RedisPipe(url, ssl_ca_certs, timeout_s, timeout_s) if plain else None
    return client, pipe
