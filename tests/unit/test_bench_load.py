"""streams.bench_load.HttpLoad against a tiny in-process aiohttp server on loopback."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest_asyncio
from aiohttp import web

from streams.bench_load import HttpLoad
from streams.services import free_port


@dataclass
class Server:
    port: int
    arrivals: list[tuple[int, float]] = field(default_factory=list)  # (request number, when)


@pytest_asyncio.fixture(loop_scope="function")
async def server() -> AsyncIterator[Server]:
    found = Server(free_port())

    async def ok(request: web.Request) -> web.Response:
        found.arrivals.append((int(request.match_info["n"]), time.perf_counter()))
        return web.json_response({"n": int(request.match_info["n"])})

    async def slow(request: web.Request) -> web.Response:
        found.arrivals.append((int(request.match_info["n"]), time.perf_counter()))
        await asyncio.sleep(0.05)
        return web.json_response({"slow": True})

    async def stall(request: web.Request) -> web.Response:
        """Request 10 holds the whole process for 0.3 s, as a garbage collection or a
        fork of the server would: nothing is sent or answered meanwhile."""
        n = int(request.match_info["n"])
        found.arrivals.append((n, time.perf_counter()))
        if n == 10:
            time.sleep(0.3)  # noqa: ASYNC251 (the stall is the point)
        return web.json_response({"n": n})

    async def missing(request: web.Request) -> web.Response:
        found.arrivals.append((int(request.match_info["n"]), time.perf_counter()))
        raise web.HTTPNotFound()

    app = web.Application()
    app.router.add_get("/ok/{n}", ok)
    app.router.add_get("/slow/{n}", slow)
    app.router.add_get("/missing/{n}", missing)
    app.router.add_get("/stall/{n}", stall)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", found.port).start()
    try:
        yield found
    finally:
        await runner.cleanup()


class Paths:
    """Every third request goes to a missing page; remembers the numbers it was given."""

    def __init__(self, good: str = "ok") -> None:
        self.good = good
        self.numbers: list[int] = []

    def __call__(self, n: int) -> str:
        self.numbers.append(n)
        return f"/missing/{n}" if n % 3 == 0 else f"/{self.good}/{n}"


async def test_closed_loop_counts_requests_statuses_and_latencies(server: Server) -> None:
    paths = Paths()
    result = await HttpLoad("127.0.0.1", server.port).closed_loop(paths, 0.3, connections=4)
    assert result.requests >= 20  # a loopback server answers far faster than that
    assert paths.numbers == list(range(result.requests))
    assert sorted(n for n, _ in server.arrivals) == paths.numbers
    missing = sum(1 for n in paths.numbers if n % 3 == 0)
    assert result.statuses == {200: result.requests - missing, 404: missing}
    assert len(result.latencies_ms) == result.requests
    assert all(ms > 0 for ms in result.latencies_ms)
    assert 0.3 <= result.seconds < 1.5
    summary = result.summary()
    assert summary["statuses"] == {200: result.requests - missing, 404: missing}
    assert summary["requests_per_s"] == round(result.requests / result.seconds, 1)


async def test_open_loop_sends_rate_times_seconds_requests_at_that_rate(server: Server) -> None:
    paths = Paths()
    rate, seconds = 200.0, 0.5
    result = await HttpLoad("127.0.0.1", server.port).open_loop(paths, rate, seconds, connections=8)
    assert result.requests == 100
    assert paths.numbers == list(range(100))
    assert result.statuses == {200: 66, 404: 34}
    assert len(result.latencies_ms) == 100
    assert all(ms > 0 for ms in result.latencies_ms)
    # the last request is due 99/200 s after the first: the run lasts about that long
    assert 99 / rate <= result.seconds < 1.5
    # and the requests reach the server on their schedule, not in one burst
    arrivals = dict(server.arrivals)
    assert sorted(arrivals) == list(range(100))
    # each arrival less when it was due after the first: on schedule they are about the
    # same (a request held up by the machine adds a little to its own); in one burst they
    # would spread over the whole 0.5 s. Not counted from one request, which a stall
    # of its own would set apart from all the others.
    offsets = [arrivals[i] - i / rate for i in range(100)]
    assert max(offsets) - min(offsets) < 0.4, (min(offsets), max(offsets))


async def test_open_loop_counts_waiting_for_a_connection_as_latency(server: Server) -> None:
    """One connection and a server taking 50 ms: requests due every 10 ms queue up, and
    their latency runs from when they were due, not from when they could be sent."""
    result = await HttpLoad("127.0.0.1", server.port).open_loop(
        Paths("slow"), rate=100.0, seconds=0.1, connections=1
    )
    assert result.requests == 10
    assert result.statuses == {200: 6, 404: 4}
    assert max(result.latencies_ms) > 150  # the last one waited behind six slow ones
    assert min(result.latencies_ms) > 0


async def test_open_loop_counts_a_stall_in_every_request_it_held_back(server: Server) -> None:
    """With connections to spare, the requests due during a stall are sent at its end:
    each is timed from when it was due, so the stall is seen in all of them, not only in
    the one that met it."""
    result = await HttpLoad("127.0.0.1", server.port).open_loop(
        lambda n: f"/stall/{n}", rate=200.0, seconds=0.5, connections=64
    )
    assert result.requests == 100
    held_back = [ms for ms in result.latencies_ms if ms >= 100]
    assert len(held_back) >= 30, sorted(result.latencies_ms)[-40:]


async def test_the_generators_collector_is_held_off_while_it_measures(server: Server) -> None:
    """Its pauses would count as the server's latency; it is back on afterwards."""
    seen: list[bool] = []

    def path(n: int) -> str:
        seen.append(gc.isenabled())
        return f"/ok/{n}"

    load = HttpLoad("127.0.0.1", server.port)
    assert gc.isenabled()
    await load.closed_loop(path, 0.1, connections=2)
    await load.open_loop(path, 200.0, 0.1, connections=2)
    assert seen and not any(seen)
    assert gc.isenabled()
