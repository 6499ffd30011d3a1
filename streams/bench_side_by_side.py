"""``moments bench --only http --against DIR``: this Moments' API beside another's.

The machine's speed drifts between runs of the bench (minutes apart, their p99 at half
the maximum rate moved more than two commits differed), so a change is compared with
the code before it side by side: an API from each source tree, each with its own
customers seeded alike, on the same Kafka and Redis, paced in turn at the same rate
(half this tree's maximum), round after round in alternating order. Reported per tree:
p50 and p99 per round and their medians, the API's CPU per recommendation, and the
Redis forks (AOF rewrites) during each round, which slow whichever round they fall in.
"""

from __future__ import annotations

import statistics
from functools import partial
from pathlib import Path
from typing import Any

from streams.bench_http import KEY, closed_loop_max, measured, paced, started_api
from streams.bench_load import HttpLoad
from streams.services import Services

HERE = Path(__file__).resolve().parents[1]  # this source tree


def source_tree(raw: str) -> Path:
    """A Moments source tree to compare with (``--against``): a folder holding
    ``streams/cli.py``; else ValueError, saying so.

    >>> source_tree("/nonexistent")
    Traceback (most recent call last):
    ...
    ValueError: /nonexistent holds no Moments source tree (no streams/cli.py)
    """
    tree = Path(raw).resolve()
    if not (tree / "streams" / "cli.py").is_file():
        raise ValueError(f"{raw} holds no Moments source tree (no streams/cli.py)")
    return tree


def medians(rounds: list[dict[str, Any]]) -> dict[str, float]:
    """The medians of the rounds' p50, p99 and API CPU per request.

    >>> medians([{"latency_ms_p50": 2.0, "latency_ms_p99": 7.0, "server_cpu_us_per_request": 9},
    ...          {"latency_ms_p50": 3.0, "latency_ms_p99": 5.0, "server_cpu_us_per_request": 7}])
    {'p50_ms': 2.5, 'p99_ms': 6.0, 'server_cpu_us_per_request': 8.0}
    """
    return {
        "p50_ms": statistics.median(r["latency_ms_p50"] for r in rounds),
        "p99_ms": statistics.median(r["latency_ms_p99"] for r in rounds),
        "server_cpu_us_per_request": statistics.median(
            r["server_cpu_us_per_request"] for r in rounds
        ),
    }


async def bench_side_by_side(
    svc: Services,
    work: Path,
    against: Path,
    rounds: int = 10,
    seconds: float = 8.0,
    customers: int = 5000,
) -> dict[str, Any]:
    """Pace this tree's API and ``against``'s in turn, ``rounds`` times each."""
    trees = {"this": HERE, "against": against}
    apis = {}
    try:
        for name, tree in trees.items():
            apis[name] = await started_api(svc, work / name, customers, tree)
        loads = {name: HttpLoad("127.0.0.1", api.port, KEY) for name, api in apis.items()}
        rate = (await closed_loop_max(apis["this"], loads["this"], seconds)) / 2
        found: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
        for at in range(rounds):
            order = list(trees) if at % 2 == 0 else list(reversed(trees))
            for name in order:
                api, load = apis[name], loads[name]
                found[name].append(await measured(partial(paced, api, load, rate, seconds), api))
        return {
            "rate": round(rate, 1),
            "rounds": rounds,
            "seconds_per_round": seconds,
            **{
                name: {
                    "tree": str(trees[name]),
                    **medians(found[name]),
                    "p99_ms_by_round": [r["latency_ms_p99"] for r in found[name]],
                    "p50_ms_by_round": [r["latency_ms_p50"] for r in found[name]],
                    "redis_forks_by_round": [r["redis_forks"] for r in found[name]],
                    "not_done": sum(r["not_done"] for r in found[name]),
                }
                for name in trees
            },
        }
    finally:
        for api in apis.values():
            api.stop()
