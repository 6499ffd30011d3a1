"""The feature-store part of ``moments bench``: the store against plain redis-py.

Both sides send the same EVALSHA commands, pipelined in batches, to the same Redis:
the baseline has its arguments built in advance and only loops over redis-py; the
store builds them from touchpoints as it goes. Also reports round trips per event
and the latency of reading one customer.
"""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis

from feature_store import FeatureStore, StoreConfig, touchpoint_fact
from feature_store.connection import SCRIPTS
from schemas import TouchpointEvent
from streams.simulation.population import CustomerPopulation


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile by nearest rank: the smallest value with at least q % of the
    values at or below it (NaN for no values).

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50), percentile([float(v) for v in range(1, 1071)], 99)
    (2.0, 1060.0)
    """
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


async def _store_run(url: str, events: list[TouchpointEvent], batch: int) -> tuple[float, int]:
    store = FeatureStore.from_url(
        url, StoreConfig(secret=b"bench", prefix=f"bs{uuid.uuid4().hex[:6]}")
    )
    await store.apply(events[:1])  # load the script outside the timing
    before = store.round_trips
    started = time.perf_counter()
    for i in range(1, len(events), batch):
        await store.apply(events[i : i + batch])
    seconds = time.perf_counter() - started
    trips = store.round_trips - before
    await store.close()
    return (len(events) - 1) / seconds, trips


async def _plain_run(url: str, events: list[TouchpointEvent], batch: int) -> float:
    store = FeatureStore(
        aioredis.Redis.from_url(url, decode_responses=True),
        StoreConfig(secret=b"bench", prefix=f"bp{uuid.uuid4().hex[:6]}"),
    )
    await store.apply(events[:1])
    sha = hashlib.sha1(SCRIPTS["apply"].encode()).hexdigest()  # the same script, loaded
    now_ms = int(time.time() * 1000)
    commands = [store._call(touchpoint_fact(e), now_ms) for e in events[1:]]
    await store.close()
    client = aioredis.Redis.from_url(url, decode_responses=True)
    started = time.perf_counter()
    for i in range(0, len(commands), batch):
        pipe = client.pipeline(transaction=False)
        for keys, args in commands[i : i + batch]:
            pipe.execute_command("EVALSHA", sha, len(keys), *keys, *args)
        await pipe.execute()
    seconds = time.perf_counter() - started
    await client.aclose()
    return len(commands) / seconds


async def _read_latency(url: str, events: list[TouchpointEvent], reads: int) -> dict[str, float]:
    store = FeatureStore(
        aioredis.Redis.from_url(url, decode_responses=True),
        StoreConfig(secret=b"bench", prefix=f"br{uuid.uuid4().hex[:6]}"),
    )
    await store.apply(events)
    customers = sorted({e.customer_id for e in events})
    timings = []
    for i in range(reads):
        started = time.perf_counter()
        await store.read(customers[i % len(customers)])
        timings.append((time.perf_counter() - started) * 1000)
    await store.close()
    return {
        "read_one_ms_p50": round(percentile(timings, 50), 3),
        "read_one_ms_p99": round(percentile(timings, 99), 3),
    }


async def bench_store(url: str, events: int = 20000, batch: int = 200) -> dict[str, Any]:
    population = CustomerPopulation(2000, seed=44)
    stream = list(population.touchpoints(events, datetime.now(UTC), rate=1000.0))
    plain_rates, store_rates, trips = [], [], 0
    for _ in range(2):  # interleaved, best of two each, on a shared machine
        plain_rates.append(await _plain_run(url, stream, batch))
        rate, trips = await _store_run(url, stream, batch)
        store_rates.append(rate)
    plain, store = max(plain_rates), max(store_rates)
    return {
        "events": events,
        "batch": batch,
        "plain_redis_py_updates_per_s": round(plain, 1),
        "store_updates_per_s": round(store, 1),
        "store_over_plain": round(store / plain, 3),
        "round_trips_per_event": round(trips / (events - 1), 4),
        **await _read_latency(url, stream[:5000], reads=2000),
    }
