"""The HTTP part of ``moments bench``: recommendations against a trivial route.

Both routes are served by the same ``moments api`` process and driven by the same load
generator (:mod:`streams.bench_load`): first closed loop at full speed (requests/s and
the server's CPU per request), then open loop at half the recommendation endpoint's
maximum rate (latency p50/p99). Only answers that did their work count as throughput:
``200`` answers, less the fallbacks (safe default offers) among them, so that a shed
load or an error cannot pass for throughput; the answers that did not are reported.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import redis

from feature_store import FeatureStore, StoreConfig
from streams.bench_load import HttpLoad, LoadResult
from streams.model_snapshots import MODEL, Snapshot
from streams.services import Services, dies_with_parent, free_port
from streams.simulation.population import CustomerPopulation

KEY = {"Authorization": "Bearer moments-dev-key"}
FALLBACKS = "moments_recommendation_fallbacks_total"
CONNECTIONS = 16  # the load generator's keep-alive connections


def _cpu_seconds(pid: int) -> float:
    from streams.bench import cpu_seconds

    return cpu_seconds(pid)


def _metric(base: str, prefix: str) -> float:
    """The sum of the API's /metrics samples whose line starts with ``prefix``."""
    with urllib.request.urlopen(base + "/metrics", timeout=5) as resp:
        body = resp.read().decode()
    return sum(
        float(line.rpartition(" ")[2]) for line in body.splitlines() if line.startswith(prefix)
    )


def _fallbacks(base: str) -> float:
    """Fallback answers so far, over every reason."""
    return _metric(base, FALLBACKS)


def _redis_forks(url: str) -> Callable[[], int]:
    """Forks Redis has made so far (AOF rewrites, RDB saves). Each keeps a core busy for
    a while, which on a small machine the API and the load generator feel."""
    client = redis.Redis.from_url(url)
    return lambda: int(client.info("stats")["total_forks"])


async def _measured(
    run: Callable[[], Awaitable[LoadResult]], pid: int, base: str, forks: Callable[[], int]
) -> dict[str, Any]:
    """One load run, with the server's CPU per request, the fallbacks it answered and the
    Redis forks that happened meanwhile."""
    cpu, fallbacks, forked = _cpu_seconds(pid), _fallbacks(base), forks()
    result = await run()
    served = max(result.requests, 1)
    fell_back = int(_fallbacks(base) - fallbacks)
    done = result.statuses.get(200, 0) - fell_back
    return {
        **result.summary(),
        "done_per_s": result.per_s(done),  # 200 answers that are not fallbacks
        "server_cpu_us_per_request": round((_cpu_seconds(pid) - cpu) / served * 1e6, 1),
        "fallback_answers": fell_back,
        "not_done": result.requests - done,  # errors and fallbacks
        "redis_forks": forks() - forked,
    }


def _trained_snapshot() -> tuple[str, int, int]:
    """A bandit trained on simulated outcomes, as the learner publishes it: (JSON, arms,
    the outcomes it learned)."""
    from streams.evaluate import Evaluation, EvaluationConfig

    evaluation = Evaluation(EvaluationConfig(decisions=4000, warmup=1000, bootstrap=20))
    evaluation.run()
    model = evaluation.holder.model
    snapshot = Snapshot(model=model.to_dict(), offsets={}, updated_at=datetime.now(UTC))
    return msgspec.json.encode(snapshot).decode(), len(model.arms), model.updates


async def _seed(
    svc: Services, prefix: str, customers: int, events: int
) -> tuple[list[str], int, int]:
    """Customers with a history, and a trained bandit published for the API to load:
    (customer ids, the model's arms, the outcomes it learned)."""
    population = CustomerPopulation(customers, seed=45)
    store = FeatureStore.from_url(svc.redis_url, StoreConfig(secret=prefix.encode(), prefix=prefix))
    touchpoints = list(population.touchpoints(events, datetime.now(UTC), rate=1000.0))
    for i in range(0, len(touchpoints), 500):
        await store.apply(touchpoints[i : i + 500])
    snapshot, arms, learned = _trained_snapshot()
    assert await store.models.publish(MODEL, 0, snapshot) == 1
    await store.close()
    return [c.customer_id for c in population.customers], arms, learned


def _median_of(runs: list[dict[str, Any]], key: Callable[[dict[str, Any]], float]) -> int:
    """The index of the run in the middle by ``key`` (the lower middle of an even count).

    >>> _median_of([{"p99": 9.0}, {"p99": 4.0}, {"p99": 6.0}], lambda r: r["p99"])
    2
    """
    return sorted(range(len(runs)), key=lambda i: key(runs[i]))[(len(runs) - 1) // 2]


@dataclass
class StartedApi:
    """A ``moments api`` process serving seeded customers, ready and scoring with the
    trained bandit."""

    proc: subprocess.Popen[bytes]
    port: int
    ids: list[str]
    redis_forks: Callable[[], int]
    model: str  # the bandit it scores with

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def recommend(self, i: int) -> str:
        return f"/v1/customers/{self.ids[(i * 7919) % len(self.ids)]}/recommendations"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def started_api(
    svc: Services, work: Path, customers: int, tree: Path | None = None
) -> StartedApi:
    """Seed ``customers`` profiles under a prefix of their own and start ``moments api``
    on them (from the source tree ``tree``: ``None``, this one), its log in ``work``."""
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
        MOMENTS_API_PROBE_PORT="0",  # nothing probes it here
        MOMENTS_API_RATE_PER_S="1000000",
        MOMENTS_API_BURST="1000000",
        MOMENTS_LOG_LEVEL="warning",
    )
    if tree is not None:  # its modules first, not this one's (an editable install's)
        env["PYTHONPATH"] = str(tree)
    ids, arms, learned = await _seed(svc, prefix, customers, customers * 10)
    work.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (a folder, once)
    with (work / "api.log").open("wb") as out:
        proc = subprocess.Popen(  # noqa: ASYNC220 (starting it does not block)
            [sys.executable, "-m", "streams.cli", "api"],
            env=env,
            cwd=tree,
            stdout=out,
            stderr=out,
            preexec_fn=dies_with_parent(),
        )
    model = f"LinUCB trained on {learned:,} simulated outcomes, {arms} offers"
    api = StartedApi(proc, port, ids, _redis_forks(svc.redis_url), model)
    try:
        await _ready(api.base)
        load = HttpLoad("127.0.0.1", port, KEY)
        await load.closed_loop(api.recommend, 2.0, CONNECTIONS)  # warm up
    except BaseException:
        api.stop()
        raise
    return api


async def _ready(base: str) -> None:
    for _ in range(200):
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=1) as resp:  # noqa: ASYNC210
                if resp.status == 200:
                    break
        except OSError:
            pass
        await asyncio.sleep(0.2)
    for _ in range(50):  # the API scores with the trained snapshot before it is measured
        if _metric(base, f'moments_model_version{{model="{MODEL}"}}') >= 1:
            break
        await asyncio.sleep(0.2)
    else:
        raise RuntimeError("the API did not load the trained bandit snapshot")


async def measured(run: Callable[[], Awaitable[LoadResult]], api: StartedApi) -> dict[str, Any]:
    """:func:`_measured` of a run against ``api``."""
    return await _measured(run, api.proc.pid, api.base, api.redis_forks)


def paced(api: StartedApi, load: HttpLoad, rate: float, seconds: float) -> Awaitable[LoadResult]:
    """Recommendations due at ``rate`` a second for ``seconds``."""
    return load.open_loop(api.recommend, rate, seconds)


async def closed_loop_max(api: StartedApi, load: HttpLoad, seconds: float) -> float:
    """Recommendations done per second at full speed (closed loop)."""
    result = await measured(lambda: load.closed_loop(api.recommend, seconds, CONNECTIONS), api)
    return float(result["done_per_s"])


async def bench_http(
    svc: Services,
    work: Path,
    seconds: float = 8.0,
    customers: int = 5000,
    connections: int = CONNECTIONS,
    rounds: int = 3,
) -> dict[str, Any]:
    """Seed ``customers`` profiles, start ``moments api`` and measure both routes.

    The machine's speed can drift within minutes, so each measurement is taken
    ``rounds`` times: the two routes at full speed alternate, and the ratio reported is
    the median of the rounds' ratios; the latency at half the maximum rate is the run
    with the median p99."""
    api = await started_api(svc, work, customers)
    proc, base = api.proc, api.base
    try:
        load = HttpLoad("127.0.0.1", api.port, KEY)
        forks = api.redis_forks
        recommend = api.recommend

        def trivial(i: int) -> str:
            return "/healthz"

        full_speed = []
        for _ in range(rounds):  # the routes alternate, so that both see the same drift
            trivial_max = await _measured(
                lambda: load.closed_loop(trivial, seconds, connections), proc.pid, base, forks
            )
            recommend_max = await _measured(
                lambda: load.closed_loop(recommend, seconds, connections), proc.pid, base, forks
            )
            ratio = recommend_max["done_per_s"] / trivial_max["done_per_s"]
            full_speed.append({"trivial_route": trivial_max, "recommendations": recommend_max,
                               "ratio": round(ratio, 3)})  # fmt: skip
        middle = full_speed[_median_of(full_speed, lambda r: float(r["ratio"]))]
        # the endpoint's maximum rate: the median of the rounds' (drift moves it)
        fastest = full_speed[_median_of(full_speed, lambda r: r["recommendations"]["done_per_s"])]
        half = fastest["recommendations"]["done_per_s"] / 2
        paced_runs = [
            await _measured(lambda: load.open_loop(recommend, half, seconds), proc.pid, base, forks)
            for _ in range(rounds)
        ]
        paced = paced_runs[_median_of(paced_runs, lambda r: float(r["latency_ms_p99"]))]
        # the trivial route at the same rate: what merely serving a request costs there
        trivial_paced = await _measured(
            lambda: load.open_loop(trivial, half, seconds), proc.pid, base, forks
        )
        return {
            "load_tool": f"streams.bench_load, {connections} keep-alive connections",
            "customers": customers,
            "model": api.model,
            "rounds": rounds,
            "trivial_route": middle["trivial_route"],
            "recommendations": middle["recommendations"],
            "recommendations_over_trivial": middle["ratio"],
            "ratio_by_round": [r["ratio"] for r in full_speed],
            "recommendations_at_half_max": {"rate": round(half, 1), **paced},
            "p99_ms_by_round_at_half_max": [r["latency_ms_p99"] for r in paced_runs],
            "redis_forks_by_round_at_half_max": [r["redis_forks"] for r in paced_runs],
            # which runs the errors and fallbacks counted below came from
            "not_done_by_round": {
                "trivial_route": [r["trivial_route"]["not_done"] for r in full_speed],
                "recommendations": [r["recommendations"]["not_done"] for r in full_speed],
                "recommendations_at_half_max": [r["not_done"] for r in paced_runs],
                "trivial_route_at_the_same_rate": trivial_paced["not_done"],
            },
            "trivial_route_at_the_same_rate": {"rate": round(half, 1), **trivial_paced},
            "p99_over_trivial_at_the_same_rate": round(
                paced["latency_ms_p99"] / trivial_paced["latency_ms_p99"], 3
            ),
            # answers that were errors or fallbacks, over every measured run of either route
            "not_done": sum(
                run["not_done"]
                for run in [
                    *(r[k] for r in full_speed for k in ("trivial_route", "recommendations")),
                    *paced_runs,
                    trivial_paced,
                ]
            ),
        }
    finally:
        api.stop()
