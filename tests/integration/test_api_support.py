"""Helpers shared by the HTTP API integration tests (test_api_*.py); no tests here.

Requests go over real HTTP to a ``moments api`` subprocess; Kafka is read with plain
aiokafka consumers and Redis with plain redis-py, independently of Moments' own code.
"""

from __future__ import annotations

import asyncio
import json
import time
import tomllib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.settings import Settings

DEV_KEY = "moments-dev-key"
DEV_AUTH = {"Authorization": f"Bearer {DEV_KEY}"}


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:  # shown by failing asserts
        return f"<{self.status} {self.headers.get('Content-Type')} {self.body[:500]!r}>"


async def call(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    body: Any = None,
    data: bytes | None = None,
    content_type: str | None = "application/json",
    within: float = 15.0,
) -> Reply:
    """One HTTP request; ``body`` is sent as JSON, ``data`` as raw bytes."""
    sent = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
    if data is not None and content_type is not None:
        sent["Content-Type"] = content_type
    client_timeout = aiohttp.ClientTimeout(total=within)
    async with (
        aiohttp.ClientSession(timeout=client_timeout, skip_auto_headers=["Content-Type"]) as s,
        s.request(method, url, headers=sent, data=data) as resp,
    ):
        return Reply(resp.status, dict(resp.headers), await resp.read())


def assert_error(reply: Reply, status: int, code: str | None = None) -> dict[str, Any]:
    """The contract's error shape: a JSON object with string ``error`` and ``message``."""
    assert reply.status == status, reply
    assert reply.headers.get("Content-Type", "").startswith("application/json"), reply
    body = reply.json
    assert isinstance(body, dict), reply
    assert isinstance(body.get("error"), str) and body["error"], reply
    assert isinstance(body.get("message"), str) and body["message"], reply
    if code is not None:
        assert body["error"] == code, reply
    return body


async def eventually(
    check: Callable[[], Awaitable[Any]], what: str, within: float = 45.0, every: float = 0.25
) -> Any:
    """Poll ``check()`` until it returns something truthy; fail with ``what`` otherwise."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(every)
    raise AssertionError(f"{what}: not within {within}s (last: {last!r})")


async def once_counted(
    read: Callable[[], float], want: float, what: str, within: float = 10.0
) -> float:
    """``read()``, a counter on a process's /metrics, once it is ``want`` or more (a
    process counts a moment after the record sent or the key written a test saw): its
    value then, for the test to assert exactly."""

    async def reached() -> tuple[float] | None:
        value = await asyncio.to_thread(read)
        return (value,) if value >= want else None

    value: float = (await eventually(reached, what, within))[0]
    return value


async def read_to_end(bootstrap: str, topic: str) -> list[Any]:
    """Every record of ``topic`` up to its end offsets as of now (exact, no lingering)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,  # the end offsets are looked up while it fetches
    )
    await consumer.start()
    try:
        tps: list[TopicPartition] = []
        for _ in range(80):
            tps = sorted(consumer.assignment())
            if tps:
                break
            await asyncio.sleep(0.25)
        assert tps, f"topic {topic} has no partitions"
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[Any] = []
        deadline = time.monotonic() + 30
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            assert time.monotonic() < deadline, f"could not read {topic} to its end"
            batch = await consumer.getmany(*tps, timeout_ms=500)
            for tp, msgs in batch.items():
                records.extend(m for m in msgs if m.offset < ends[tp])
        return records
    finally:
        await consumer.stop()


def left_by_erasure(tombstone: str, withdrew: bool = False) -> list[str]:
    """The keys an erasure leaves of a customer: the tombstone, and beside it which keys
    it removed (no data), and, of a customer who ``withdrew``, the withdrawals it kept
    (their names alone), as :func:`keys_tagged` lists them."""
    base = tombstone.removesuffix(":erased")
    return sorted([tombstone, f"{base}:erasure", *([f"{base}:supp"] if withdrew else [])])


async def keys_tagged(redis_url: str, tag: str) -> list[str]:
    """Every key in the whole Redis whose name carries the customer's keyed-hash tag."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        return sorted([k async for k in client.scan_iter(match=f"*{tag}*", count=1000)])
    finally:
        await client.aclose()


def iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def event(kind: str, customer_id: str, event_id: str, minutes_ago: float = 5, **fields: Any) -> Any:
    """A contract-shaped touchpoint (DESIGN.md section 4), written independently of schemas/."""
    ts = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    defaults: dict[str, dict[str, Any]] = {
        "web_click": {"page": "/products/books/1", "category": "books"},
        "call": {"status": "started", "direction": "inbound", "reason": "support"},
        "email": {"action": "opened"},
        "social_mention": {"platform": "x", "sentiment": 0.2},
        "purchase": {"order_id": f"o-{event_id}", "amount": 25.0, "currency": "EUR"},
        "survey": {"score": 9, "scale": "nps"},
        "consent": {"channel": "email", "granted": True},
    }
    base = {"type": kind, "event_id": event_id, "customer_id": customer_id, "ts": iso(ts)}
    return base | defaults[kind] | fields


def outcome(decision_id: str, customer_id: str, offer_id: str, result: str = "clicked") -> Any:
    return {
        "decision_id": decision_id,
        "customer_id": customer_id,
        "offer_id": offer_id,
        "outcome": result,
        "ts": iso(datetime.now(UTC)),
    }


@dataclass
class Catalogue:
    """The offer catalogue the API loads, read here straight from its TOML file."""

    offers: dict[str, dict[str, Any]]
    default_offers: list[str]
    version: str
    contact_policy: dict[str, dict[str, int]]  # daily_caps / weekly_caps, by channel

    @classmethod
    def load(cls) -> Catalogue:
        with open(Settings().catalogue_path, "rb") as f:
            raw = tomllib.load(f)
        offers = {o["offer_id"]: o for o in raw["offers"]}
        return cls(offers, list(raw["default_offers"]), raw["version"], raw["contact_policy"])

    def defaults_for(self, channel: str, limit: int) -> list[str]:
        on_channel = [o for o in self.default_offers if channel in self.offers[o]["channels"]]
        return on_channel[:limit]


@dataclass
class SseEvent:
    id: str | None
    event: str | None
    data: str

    @property
    def json(self) -> Any:
        return json.loads(self.data)


@dataclass
class SseClient:
    """A Server-Sent Events reader over a real HTTP connection."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    session: aiohttp.ClientSession | None = None
    response: aiohttp.ClientResponse | None = None
    comments: list[str] = field(default_factory=list)
    retry: str | None = None

    async def __aenter__(self) -> SseClient:
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        self.response = await self.session.get(self.url, headers=self.headers)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self.response is not None:
            self.response.close()
        if self.session is not None:
            await self.session.close()

    async def subscribed(self, within: float = 20.0) -> None:
        """Wait for the stream's opening ``retry:`` hint (sent once the screen is listening)."""
        assert self.response is not None
        while self.retry is None:
            raw = await asyncio.wait_for(self.response.content.readline(), within)
            if not raw:
                raise ConnectionError("the event stream ended")
            line = raw.decode().rstrip("\r\n")
            if line.startswith("retry:"):
                self.retry = line[6:].strip()
            else:
                assert line == "" or line.startswith(":"), f"an event before the retry hint: {line}"

    async def next(self, within: float = 20.0) -> SseEvent:
        """The next event (comments and the retry hint are kept aside)."""
        assert self.response is not None
        fields: dict[str, list[str]] = {}
        deadline = time.monotonic() + within
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no server-sent event within {within}s")
            raw = await asyncio.wait_for(self.response.content.readline(), left)
            if not raw:
                raise ConnectionError("the event stream ended")
            line = raw.decode().rstrip("\r\n")
            if line == "":
                if "data" in fields:
                    return SseEvent(
                        (fields.get("id") or [None])[-1],
                        (fields.get("event") or [None])[-1],
                        "\n".join(fields["data"]),
                    )
                fields = {}
                continue
            if line.startswith(":"):
                self.comments.append(line)
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "retry":
                self.retry = value
            else:
                fields.setdefault(name, []).append(value)

    async def nothing_more(self, wait: float) -> None:
        """Assert that no further event arrives within ``wait`` seconds."""
        try:
            extra = await self.next(within=wait)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected extra event {extra}")


def metric_total(api: Any, name: str, **labels: str) -> float:
    """Sum of every sample of ``name`` whose labels include ``labels``."""
    _, body = api.get("/metrics")
    total = 0.0
    for line in body.splitlines():
        if line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        metric, _, rest = series.partition("{")
        if metric != name:
            continue
        have = dict(part.split("=", 1) for part in rest.rstrip("}").split(",") if "=" in part)
        if all(have.get(k) == f'"{v}"' for k, v in labels.items()):
            total += float(value)
    return total
