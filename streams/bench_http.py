"""The HTTP part of ``moments bench``: recommendations against a trivial route.

Both routes are served by the same ``moments api`` process and driven by the same
asyncio load generator: first closed-loop at full speed (requests/s), then
open-loop at half the recommendation endpoint's maximum rate (latency p50/p99).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from feature_store import FeatureStore, StoreConfig
from streams.bench_store import percentile
from streams.services import Services, free_port
from streams.simulation.population import CustomerPopulation

KEY = {"Authorization": "Bearer moments-dev-key"}


async def _closed_loop(url_for: Any, seconds: float, concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(session: aiohttp.ClientSession, n: int) -> None:
        nonlocal errors
        i = n
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            async with session.get(url_for(i), headers=KEY) as resp:
                await resp.read()
                if resp.status != 200:
                    errors += 1
            latencies.append(time.perf_counter() - started)
            i += concurrency

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        begun = time.perf_counter()
        await asyncio.gather(*(worker(session, n) for n in range(concurrency)))
        elapsed = time.perf_counter() - begun
    return {"requests_per_s": round(len(latencies) / elapsed, 1), "errors": errors}


async def _open_loop(url_for: Any, rate: float, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0

    async def one(session: aiohttp.ClientSession, i: int) -> None:
        nonlocal errors
        started = time.perf_counter()
        async with session.get(url_for(i), headers=KEY) as resp:
            await resp.read()
            if resp.status != 200:
                errors += 1
        latencies.append((time.perf_counter() - started) * 1000)

    tasks = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
        start = time.perf_counter()
        for i in range(int(rate * seconds)):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(session, i)))
        await asyncio.gather(*tasks)
    return {
        "rate": round(rate, 1),
        "latency_ms_p50": round(percentile(latencies, 50), 3),
        "latency_ms_p99": round(percentile(latencies, 99), 3),
        "errors": errors,
    }


async def bench_http(svc: Services, work: Path, seconds: float = 8.0) -> dict[str, Any]:
    prefix = f"bh{uuid.uuid4().hex[:6]}"
    port = free_port()
    env = dict(
        os.environ,
        MOMENTS_KAFKA_BOOTSTRAP=svc.kafka_bootstrap,
        MOMENTS_REDIS_URL=svc.redis_url,
        MOMENTS_TOPIC_PREFIX=prefix + "-",
        MOMENTS_REDIS_PREFIX=prefix,
        MOMENTS_KEY_SECRET=prefix,
        MOMENTS_API_PORT=str(port),
        MOMENTS_API_RATE_PER_S="1000000",
        MOMENTS_API_BURST="1000000",
        MOMENTS_LOG_LEVEL="warning",
    )
    population = CustomerPopulation(1000, seed=45)
    events = list(population.touchpoints(20000, datetime.now(UTC), rate=1000.0))
    store = FeatureStore(
        aioredis.Redis.from_url(svc.redis_url, decode_responses=True),
        StoreConfig(secret=prefix.encode(), prefix=prefix),
    )
    for i in range(0, len(events), 500):
        await store.apply(events[i : i + 500])
    await store.close()
    customers = [c.customer_id for c in population.customers]
    base = f"http://127.0.0.1:{port}"
    with (work / "api.log").open("wb") as out:
        proc = subprocess.Popen(  # noqa: ASYNC220 (starting it does not block)
            [sys.executable, "-m", "streams.cli", "api"], env=env, stdout=out, stderr=out
        )
    try:
        for _ in range(200):
            try:
                with urllib.request.urlopen(base + "/readyz", timeout=1) as resp:  # noqa: ASYNC210
                    if resp.status == 200:
                        break
            except OSError:
                pass
            await asyncio.sleep(0.2)

        def trivial(i: int) -> str:
            return base + "/healthz"

        def recommend(i: int) -> str:
            return f"{base}/v1/customers/{customers[i % len(customers)]}/recommendations"

        await _closed_loop(recommend, 2.0, 16)  # warm up
        trivial_max = await _closed_loop(trivial, seconds, 16)
        recommend_max = await _closed_loop(recommend, seconds, 16)
        half = recommend_max["requests_per_s"] / 2
        paced = await _open_loop(recommend, half, seconds)
        return {
            "trivial_route": trivial_max,
            "recommendations": recommend_max,
            "recommendations_over_trivial": round(
                recommend_max["requests_per_s"] / trivial_max["requests_per_s"], 3
            ),
            "recommendations_at_half_max": paced,
        }
    finally:
        proc.terminate()
        proc.wait(20)
