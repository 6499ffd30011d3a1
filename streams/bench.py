"""``moments bench``: the real pipeline beside a plain aiokafka baseline, same broker and Redis.

For each contender (baseline, pipeline) it pre-loads the same touchpoints into a fresh
one-partition topic, starts the contender as its own process, and measures from the
decisions it emits: events/s, CPU-seconds per event, then event-to-decision latency
p50/p99 at a fixed offered load. It prints one JSON document.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from schemas import TouchpointEvent, encode_touchpoint
from streams.bench_http import bench_http
from streams.bench_snapshots import bench_snapshots
from streams.bench_store import bench_store, percentile
from streams.committed_reads import READ_COMMITTED
from streams.kafka_security import client_options
from streams.services import Services, dies_with_parent, free_port, services, stopped_like_ctrl_c
from streams.simulation.population import CustomerPopulation

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class _Trigger(msgspec.Struct):
    trigger_event_id: str


_trigger = msgspec.json.Decoder(_Trigger)


@dataclass
class Contender:
    name: str
    prefix: str
    command: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    def topic(self, name: str) -> str:
        return self.prefix + name


@dataclass
class Received:
    at: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)


async def create_topics(bootstrap: str, names: list[str], partitions: int = 1) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_options())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, partitions, 1) for n in names])
    finally:
        await admin.close()


async def produce(bootstrap: str, topic: str, events: list[TouchpointEvent]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, **client_options()
    )
    await producer.start()
    try:
        for event in events:
            await producer.send(topic, encode_touchpoint(event), key=event.customer_id.encode())
        await producer.flush()
    finally:
        await producer.stop()


async def watch(
    bootstrap: str,
    topic: str,
    want: set[str],
    received: Received,
    pid: int,
    wait_s: float,
    ready: asyncio.Event | None = None,
) -> None:
    """Record when each wanted decision arrives (and the contender's CPU time then).
    With ``ready``, only decisions written from now on are read: it is set once the
    consumer sits at the end of the topic."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        isolation_level=READ_COMMITTED,
        **client_options(),
    )
    await consumer.start()
    if ready is not None:
        await consumer.seek_to_end()
        for partition in consumer.assignment():
            await consumer.position(partition)  # the end, looked up before anything is sent
        ready.set()
    deadline = time.monotonic() + wait_s
    try:
        while want - received.at.keys() and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            now = time.time()
            cpu = cpu_seconds(pid)
            for records in batches.values():
                for record in records:
                    trigger = _trigger.decode(record.value or b"{}").trigger_event_id
                    if trigger in want and trigger not in received.at:
                        received.at[trigger] = now
                        received.cpu[trigger] = cpu
    finally:
        await consumer.stop()


async def measure(
    contender: Contender,
    bootstrap: str,
    preload: list[TouchpointEvent],
    paced: list[TouchpointEvent],
    rate: float,
) -> dict[str, Any]:
    source, sink = contender.topic("touchpoints"), contender.topic("next-best-offers")
    await create_topics(bootstrap, [source, sink, contender.topic("touchpoints-dlq")])
    await produce(bootstrap, source, preload)
    assert contender.log is not None
    with contender.log.open("wb") as out:
        contender.proc = subprocess.Popen(  # noqa: ASYNC220 (starting it does not block)
            contender.command,
            env=contender.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=dies_with_parent(),
        )
    try:
        clicks = [i for i, e in enumerate(preload) if e.kind == "web_click"]
        index = {preload[i].event_id: i for i in clicks}
        got = Received()
        await watch(bootstrap, sink, set(index), got, contender.proc.pid, wait_s=300)
        if len(got.at) < len(index):
            raise RuntimeError(f"{contender.name}: only {len(got.at)}/{len(index)} decisions")
        first = min(got.at, key=got.at.__getitem__)
        last = max(got.at, key=got.at.__getitem__)
        events = index[last] - index[first]
        seconds = got.at[last] - got.at[first]
        cpu = got.cpu[last] - got.cpu[first]
        # Fixed offered load: stamp each event when it is sent, time its decision.
        latency = await paced_latency(bootstrap, source, sink, paced, rate, contender.proc.pid)
        return {
            "events_per_s": round(events / seconds, 1),
            "cpu_s_per_event": round(cpu / events, 6),
            "events_measured": events,
            **latency,
        }
    finally:
        contender.proc.terminate()
        try:
            contender.proc.wait(30)
        except subprocess.TimeoutExpired:
            contender.proc.kill()


async def paced_latency(
    bootstrap: str, source: str, sink: str, events: list[TouchpointEvent], rate: float, pid: int
) -> dict[str, Any]:
    """Latency at a fixed offered load: each decision timed from when its event was due
    (``rate`` per second), so that a stall is not hidden by the sends it held back. A
    decision that never came is counted as missing, and leaves no p99."""
    want = {e.event_id for e in events if e.kind == "web_click"}
    got = Received()
    due_at: dict[str, float] = {}
    ready = asyncio.Event()
    watcher = asyncio.create_task(
        watch(bootstrap, sink, want, got, pid, wait_s=len(events) / rate + 60, ready=ready)
    )
    await asyncio.wait_for(ready.wait(), 60)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=0, **client_options()
    )
    await producer.start()
    try:
        start, start_wall = time.monotonic(), time.time()
        for n, event in enumerate(events):
            delay = start + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            stamped = msgspec.structs.replace(event, ts=datetime.now(UTC))
            due_at[event.event_id] = start_wall + n / rate
            await producer.send(source, encode_touchpoint(stamped), key=event.customer_id.encode())
        await producer.flush()
    finally:
        await producer.stop()
    await watcher
    lat = [(got.at[i] - due_at[i]) * 1000 for i in want if i in got.at]
    missing = len(want) - len(lat)
    return {
        "offered_load_eps": rate,
        "latency_decisions": len(lat),
        "latency_decisions_missing": missing,
        "latency_ms_p50": round(percentile(lat, 50), 2) if lat else None,
        "latency_ms_p99": round(percentile(lat, 99), 2) if lat and not missing else None,
    }


def ratio(measured: float | None, baseline: float | None) -> float | None:
    """``measured`` over ``baseline``, to 3 places; None when either is missing or the
    baseline is 0 (a run too short to measure its CPU).

    >>> ratio(3.0, 2.0), ratio(1.0, 0.0), ratio(None, 2.0)
    (1.5, None, None)
    """
    if measured is None or not baseline:
        return None
    return round(measured / baseline, 3)


def contenders(svc: Services, work: Path) -> list[Contender]:
    run = uuid.uuid4().hex[:6]
    base = dict(os.environ, MOMENTS_KAFKA_BOOTSTRAP=svc.kafka_bootstrap)
    baseline_prefix = f"bench-{run}-baseline-"
    pipeline_prefix = f"bench-{run}-pipeline-"
    baseline_env = dict(
        base,
        BENCH_SOURCE=baseline_prefix + "touchpoints",
        BENCH_SINK=baseline_prefix + "next-best-offers",
        BENCH_GROUP=baseline_prefix + "group",
    )
    pipeline_env = dict(
        base,
        MOMENTS_REDIS_URL=svc.redis_url,
        # its own keys, whatever deployment's settings the bench was started with
        MOMENTS_REDIS_PREFIX=pipeline_prefix.rstrip("-"),
        MOMENTS_TOPIC_PREFIX=pipeline_prefix,
        MOMENTS_APP_ID=pipeline_prefix + "moments",
        MOMENTS_WEB_PORT=str(free_port()),
        MOMENTS_DATA_DIR=str(work / "data"),
        MOMENTS_TOPIC_PARTITIONS="1",
        MOMENTS_LOG_LEVEL="warning",
        MOMENTS_KEY_SECRET=f"bench-{run}",
    )
    py = sys.executable
    return [
        Contender("baseline", baseline_prefix, [py, "-m", "streams.bench_baseline"], baseline_env,
                  log=work / "baseline.log"),
        Contender("pipeline", pipeline_prefix, [py, "-m", "streams.cli", "worker"], pipeline_env,
                  log=work / "pipeline.log"),
    ]  # fmt: skip


SECTIONS = ("pipeline", "store", "scale", "http", "snapshots", "ranking", "sizing")
NO_SERVICES = {"snapshots", "ranking"}  # sections that need neither Kafka nor Redis


async def bench(
    svc: Services,
    events: int,
    rate: float,
    latency_seconds: float,
    sections: tuple[str, ...] = SECTIONS,
    against: Path | None = None,
) -> dict[str, Any]:
    population = CustomerPopulation(2000, seed=42)
    start = datetime.now(UTC)
    preload = list(population.touchpoints(events, start, rate=1000.0))
    paced_count = int(rate * latency_seconds)
    paced = list(CustomerPopulation(2000, seed=43).touchpoints(paced_count, start, rate=rate))
    report: dict[str, Any] = {"kafka": svc.kafka_bootstrap, "services": svc.origin}
    targets: dict[str, bool] = {}
    if "pipeline" in sections:
        report["events"] = events
        report["web_clicks"] = sum(e.kind == "web_click" for e in preload)
        with tempfile.TemporaryDirectory(prefix="moments-bench-") as tmp:
            for contender in contenders(svc, Path(tmp)):
                report[contender.name] = await measure(
                    contender, svc.kafka_bootstrap, preload, paced, rate
                )
        b, p = report["baseline"], report["pipeline"]
        report["ratios"] = {  # a p99 is None when a decision went missing
            "throughput_pipeline_over_baseline": ratio(p["events_per_s"], b["events_per_s"]),
            "p99_pipeline_over_baseline": ratio(p["latency_ms_p99"], b["latency_ms_p99"]),
            "cpu_per_event_pipeline_over_baseline": ratio(
                p["cpu_s_per_event"], b["cpu_s_per_event"]
            ),
        }
        throughput_ratio = report["ratios"]["throughput_pipeline_over_baseline"]
        targets["throughput_ratio_at_least_0.5"] = (
            throughput_ratio is not None and throughput_ratio >= 0.5
        )
        p99_ratio = report["ratios"]["p99_pipeline_over_baseline"]
        targets["p99_ratio_at_most_2"] = p99_ratio is not None and p99_ratio <= 2.0
    if "store" in sections:
        report["feature_store"] = store = await bench_store(svc.redis_url)
        targets["store_ratio_at_least_0.7"] = store["store_over_plain"] >= 0.7
        targets["round_trips_per_event_at_most_0.1"] = store["round_trips_per_event"] <= 0.1
    if "scale" in sections:
        from streams.bench_scale import bench_scale

        with tempfile.TemporaryDirectory(prefix="moments-bench-scale-") as tmp:
            report["scale_out"] = await bench_scale(svc, Path(tmp), preload)
    if "http" in sections:
        with tempfile.TemporaryDirectory(prefix="moments-bench-http-") as tmp:
            report["http"] = http = await bench_http(svc, Path(tmp))
        targets["http_ratio_at_least_0.5"] = http["recommendations_over_trivial"] >= 0.5
        targets["http_p99_under_5ms_at_half_max"] = (
            http["recommendations_at_half_max"]["latency_ms_p99"] < 5.0
        )
        targets["http_every_answer_done"] = http["not_done"] == 0  # no error, no fallback
        if against is not None:
            from streams.bench_side_by_side import bench_side_by_side

            with tempfile.TemporaryDirectory(prefix="moments-bench-pair-") as tmp:
                report["http_side_by_side"] = await bench_side_by_side(svc, Path(tmp), against)
    report.update(bench_without_services(sections))
    if "sizing" in sections:
        from streams.bench_sizing import bench_sizing

        report["redis_sizing"] = await bench_sizing(svc.redis_url)
    report["targets"] = targets
    return report


def bench_without_services(sections: tuple[str, ...]) -> dict[str, Any]:
    """The sections that time pure code, in this process."""
    report: dict[str, Any] = {}
    if "snapshots" in sections:
        report["model_snapshots"] = bench_snapshots()
    if "ranking" in sections:
        from streams.bench_ranking import bench_ranking

        report["offer_ranking"] = bench_ranking()
    return report


def run_bench(
    events: int = 20000,
    rate: float = 200.0,
    latency_seconds: float = 15.0,
    sections: tuple[str, ...] = SECTIONS,
    against: Path | None = None,
) -> int:
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    with stopped_like_ctrl_c():  # SIGTERM, SIGHUP: stop what it started
        if NO_SERVICES.issuperset(sections):
            report = bench_without_services(sections) | {"targets": {}}
        else:
            with services() as svc:
                report = asyncio.run(bench(svc, events, rate, latency_seconds, sections, against))
            if svc.kept is not None:
                logging.getLogger(__name__).info(
                    "Kafka's and Redis's data kept in %s (MOMENTS_KEEP_SERVICE_DATA)", svc.kept
                )
    print(json.dumps(report, indent=2))
    return 0
