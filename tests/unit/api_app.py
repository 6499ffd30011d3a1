"""The API's routes and error handling in-process, for unit tests of views that need no
Kafka or Redis; no tests here.

:func:`api_app` gives an application whose ``Api`` holds only what those views use (keys,
rate limits, stream seats, settings, metrics, a store in which no one is erased, and
whatever else a test passes); :func:`raw_request`
sends bytes as they are, which an HTTP client would refuse to (headers that are not UTF-8).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, cast

from aiohttp import web
from aiohttp.test_utils import TestServer

from streams.api import cors, views
from streams.api.auth import KeyRing, hash_key
from streams.api.body_budget import BodyBudget
from streams.api.body_encoding import REQUEST_HANDLING
from streams.api.dependency_watch import DependencyLog
from streams.api.erased_items import CheckPause
from streams.api.errors import json_errors
from streams.api.kafka_health import KafkaHealth
from streams.api.origins import parse_origins
from streams.api.ratelimit import RateLimiter
from streams.api.server import API_KEY, WRONG_KEYS_BURST, WRONG_KEYS_PER_S, Api, rate_limits
from streams.api.stream_seats import StreamSeats
from streams.api.visitors import trusted_proxies
from streams.api.write_times import WriteTimes
from streams.metrics import Metrics
from streams.settings import Settings

SHOP = "https://shop.example"
# a key for the shop's pages (bound to its origin) and one for back ends, with every scope
KEYS = (
    f"pages:recommend+outcomes:{hash_key('page-key')}@{SHOP};"
    f"backend:recommend+ingest+profile-read+erase+export:{hash_key('backend-key')}"
)
VISITOR = ("pages", "127.0.0.1")  # the page key's bucket of the tests' client, on loopback


async def _nobody_erased(customer_ids: Any) -> list[bool]:
    return [False] * len(customer_ids)


def api_app(settings: Settings | None = None, **parts: Any) -> web.Application:
    """The API's routes behind its error handling, with CORS as ``settings`` say."""
    parts.setdefault("metrics", Metrics())
    parts.setdefault("store", SimpleNamespace(erased=_nobody_erased))
    parts.setdefault("alerts", SimpleNamespace(erased_lately=set()))
    parts.setdefault("kafka", KafkaHealth(time.time))  # the broker answered just now
    settings = settings or Settings(api_keys=KEYS, api_cors_origins=SHOP)
    app = web.Application(middlewares=[json_errors], client_max_size=settings.api_max_body_bytes,
                          handler_args=REQUEST_HANDLING)  # fmt: skip
    api = SimpleNamespace(
        settings=settings,
        keys=KeyRing.parse(settings.api_keys) if settings.api_keys else KeyRing.development(),
        limiter=rate_limits(settings),
        trusted_proxies=trusted_proxies(settings.api_trusted_proxies),
        wrong_keys=RateLimiter(WRONG_KEYS_PER_S, WRONG_KEYS_BURST),
        streams=StreamSeats(settings.api_max_streams_per_key),
        outages=DependencyLog(),
        erasure_checks=CheckPause(),
        ingest_writes=WriteTimes(),
        uploads=BodyBudget(settings.api_body_budget_bytes),
        **parts,
    )
    app[API_KEY] = cast(Api, api)
    views.add_routes(app)
    if settings.api_cors_origins:
        cors.install(app, cors.CorsPolicy(parse_origins(settings.api_cors_origins)))
    return app


@dataclass
class RawReply:
    status: int
    head: bytes
    body: bytes

    @property
    def json(self) -> Any:
        assert b"content-type: application/json" in self.head.lower(), self
        return json.loads(self.body.decode("utf-8"))


async def raw_request(server: TestServer, request: bytes, half_close: bool = False) -> RawReply:
    """Send ``request`` as it is and read the reply to its end (``Connection: close`` is
    added to the headers); with ``half_close`` the sending side is shut right after."""
    head, _, body = request.partition(b"\r\n\r\n")
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(head + b"\r\nConnection: close\r\n\r\n" + body)
        if half_close:
            writer.write_eof()
        await writer.drain()
        reply = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    status_head, _, reply_body = reply.partition(b"\r\n\r\n")
    return RawReply(int(status_head.split(b" ", 2)[1]), status_head, reply_body)
