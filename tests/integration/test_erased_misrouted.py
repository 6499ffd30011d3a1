"""Records keyed by one customer's id and naming another (misrouted) around an erasure:
the record is the customer's its body names. One keyed by the erased id that names
someone else is that other customer's touchpoint, and applied to them alone; one keyed by
someone else that names the erased customer is refused; a malformed one naming the
erased customer either way is not dead-lettered. Nothing of the erased customer is kept
or made again in Redis (a SCAN of every key, name and value, for their id and keyed
hash), and no decision, alert or letter names them after their erasure.

Checked from outside: the erasure by real HTTP to a ``moments api``, the records produced
to Kafka for a real worker, the topics read with a plain consumer.
"""

from __future__ import annotations

import json
import time

import pytest
import redis.asyncio as aioredis

from tests.integration.conftest import Pipeline
from tests.integration.test_api_support import (
    DEV_AUTH,
    call,
    event,
    eventually,
    once_counted,
    read_to_end,
)
from tests.integration.test_touchpoints_pipeline import produce

pytestmark = pytest.mark.integration


async def holding(redis_url: str, prefix: str, needles: list[bytes]) -> list[str]:
    """The keys of the deployment whose name or value holds any of ``needles``."""
    client = aioredis.Redis.from_url(redis_url)
    found = []
    try:
        async for key in client.scan_iter(match=f"{prefix}*", count=1000):
            kind = (await client.type(key)).decode()
            if kind == "string":
                parts = [await client.get(key) or b""]
            elif kind == "hash":
                parts = [p for kv in (await client.hgetall(key)).items() for p in kv]
            elif kind == "zset":
                parts = list(await client.zrange(key, 0, -1))
            elif kind == "set":
                parts = list(await client.smembers(key))
            else:
                parts = list(await client.lrange(key, 0, -1)) if kind == "list" else []
            if any(n in key or any(n in part for part in parts) for n in needles):
                found.append(key.decode())
    finally:
        await client.aclose()
    return sorted(found)


def sent(key: str, body: dict[str, object]) -> tuple[bytes, bytes]:
    return key.encode(), json.dumps(body).encode()


async def test_misrouted_records_bring_nothing_of_an_erased_customer_back(
    pipeline: Pipeline,
) -> None:
    gone, other = f"{pipeline.prefix}gone", f"{pipeline.prefix}other"
    bootstrap, redis_url = pipeline.services.kafka_bootstrap, pipeline.services.redis_url
    worker = pipeline.start_worker()
    api = pipeline.start_api()
    store = pipeline.store()
    tag = store.pseudonym(gone)
    await store.close()
    before = [
        sent(gone, event("web_click", gone, "own-1", minutes_ago=3)),
        sent(gone, event("web_click", other, "mis-1", minutes_ago=3)),  # keyed by gone
        sent(other, event("purchase", gone, "mis-2", minutes_ago=3)),  # naming gone
    ]
    await produce(bootstrap, pipeline.topic("touchpoints"), before)

    async def applied() -> bool:
        views = [await call("GET", f"{api.url}/v1/customers/{c}", headers=DEV_AUTH)
                 for c in (gone, other)]  # fmt: skip
        return all(v.status == 200 for v in views) and views[0].json["features"]["events"] == 2

    await eventually(applied, "the records applied", 60)
    erasure = await call("DELETE", f"{api.url}/v1/customers/{gone}", headers=DEV_AUTH)
    assert erasure.status == 200, erasure
    erased_at_ms = time.time() * 1000
    after = [
        *before,  # replayed
        sent(gone, event("web_click", other, "mis-3", minutes_ago=0)),  # keyed by gone
        sent(other, event("web_click", gone, "mis-4", minutes_ago=0)),  # naming gone
        sent(other, event("call", gone, "mis-5", minutes_ago=0, reason="cancel")),
        (other.encode(), b'{"type": "web_click", "customer_id": "' + gone.encode() + b'", "pa'),
        (gone.encode(), b'{"type": "web_click", "customer_id": "' + other.encode() + b'", "pa'),
    ]
    await produce(bootstrap, pipeline.topic("touchpoints"), after)
    # the last record produced, another customer's own, marks the end of what to wait for
    await produce(bootstrap, pipeline.topic("touchpoints"),
                  [sent(other, event("web_click", other, "own-2", minutes_ago=0))])  # fmt: skip

    async def through() -> bool:
        view = await call("GET", f"{api.url}/v1/customers/{other}", headers=DEV_AUTH)
        return view.status == 200 and view.json["features"]["events"] >= 3

    await eventually(through, "the records after the erasure handled", 60)
    # other's: mis-1 and mis-3, keyed by the erased id, and own-2
    view = await call("GET", f"{api.url}/v1/customers/{other}", headers=DEV_AUTH)
    assert view.json["features"]["events"] == 3, view.json["features"]
    assert (await call("GET", f"{api.url}/v1/customers/{gone}", headers=DEV_AUTH)).status == 404
    prefix = pipeline.prefix.rstrip("-")
    left = await holding(redis_url, prefix, [gone.encode(), tag.encode()])
    base = f"{prefix}:{{{tag}}}"
    assert left == sorted([f"{base}:erased", f"{base}:erasure"]), left
    for name in ("next-best-offers", "interventions", "touchpoints-dlq", "risk-examples"):
        records = await read_to_end(bootstrap, pipeline.topic(name))
        naming = [r for r in records if r.timestamp >= erased_at_ms and
                  (r.key == gone.encode() or gone.encode() in (r.value or b"") or
                   tag.encode() in (r.value or b""))]  # fmt: skip
        assert naming == [], (name, naming)

    def erased() -> float:  # counted once their batch sent and recorded its decisions
        return worker.metric_sum("moments_events_total", result="erased")

    assert await once_counted(erased, 4, "the records naming the erased id counted") >= 4
