"""The scale-out part of ``moments bench``: throughput with one worker and with two.

The same pre-loaded touchpoints on a two-partition topic, consumed by one worker, then
by two in one consumer group. Throughput counts every pre-loaded event over the time
from the first decision to the last (start-up is left out the same way for both).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from schemas import TouchpointEvent
from streams.bench import Received, cpu_seconds, create_topics, produce, watch
from streams.services import Services, dies_with_parent, free_port


async def _run(
    svc: Services, work: Path, events: list[TouchpointEvent], workers: int
) -> dict[str, Any]:
    prefix = f"bs{workers}-{uuid.uuid4().hex[:6]}-"
    source, sink = prefix + "touchpoints", prefix + "next-best-offers"
    bootstrap = svc.kafka_bootstrap
    await create_topics(bootstrap, [source, sink, prefix + "touchpoints-dlq"], partitions=2)
    await produce(bootstrap, source, events)
    procs = []
    for n in range(workers):
        env = dict(
            os.environ,
            MOMENTS_KAFKA_BOOTSTRAP=bootstrap,
            MOMENTS_REDIS_URL=svc.redis_url,
            MOMENTS_TOPIC_PREFIX=prefix,
            MOMENTS_APP_ID=prefix + "moments",
            MOMENTS_REDIS_PREFIX=prefix.rstrip("-"),
            MOMENTS_WEB_PORT=str(free_port()),
            MOMENTS_DATA_DIR=str(work / f"data-{n}"),
            MOMENTS_TOPIC_PARTITIONS="2",
            MOMENTS_LOG_LEVEL="warning",
            MOMENTS_KEY_SECRET=prefix,
        )
        with (work / f"{prefix}{n}.log").open("wb") as out:
            procs.append(subprocess.Popen(  # noqa: ASYNC220 (starting it does not block)
                [sys.executable, "-m", "streams.cli", "worker"], env=env, stdout=out,
                stderr=subprocess.STDOUT, preexec_fn=dies_with_parent()))  # fmt: skip
    try:
        want = {e.event_id for e in events if e.kind == "web_click"}
        got = Received()
        await watch(bootstrap, sink, want, got, procs[0].pid, wait_s=300)
        if len(got.at) < len(want):
            raise RuntimeError(f"{workers} worker(s): only {len(got.at)}/{len(want)} decisions")
        seconds = max(got.at.values()) - min(got.at.values())
        cpu = sum(cpu_seconds(p.pid) for p in procs)
        return {"events_per_s": round(len(events) / seconds, 1),
                "cpu_s_total": round(cpu, 2)}  # fmt: skip
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        await asyncio.sleep(0)


async def bench_scale(svc: Services, work: Path, events: list[TouchpointEvent]) -> dict[str, Any]:
    one = await _run(svc, work, events, 1)
    two = await _run(svc, work, events, 2)
    return {
        "one_worker": one,
        "two_workers": two,
        "speedup": round(two["events_per_s"] / one["events_per_s"], 3),
        "note": "Kafka, Redis, the workers and the load all share this machine's cores",
    }
