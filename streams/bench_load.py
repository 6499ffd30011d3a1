"""A lean HTTP/1.1 load generator for ``moments bench``: keep-alive connections on raw
asyncio protocols, so that the generator itself costs little CPU next to the server it
measures (on a small machine they share the cores).

Two modes: closed loop (each connection sends its next request as soon as the last one
is answered: the maximum rate) and open loop (requests are due at a fixed rate whatever
the answers do; every latency runs from when its request was due, so a stall is not
hidden by the requests it held back, at the price of counting the generator's own timer
slack, a fraction of a millisecond, as the server's).

The generator's own garbage collector is held off while it measures (a collection is
made just before): its pauses, tens of milliseconds once it holds a run's thousands of
tasks and latencies, would otherwise be counted as the server's latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from streams.bench_store import percentile

Path = Callable[[int], str]  # request number -> path (with query)


@dataclass
class LoadResult:
    requests: int = 0
    seconds: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0  # of the generator's own process

    def answered(self, status: int, sent: float) -> None:
        """One answer, to a request counted from ``sent`` (a perf_counter time)."""
        self.latencies_ms.append((time.perf_counter() - sent) * 1000)
        self.statuses[status] = self.statuses.get(status, 0) + 1

    def finish(self, began: float, cpu: float) -> LoadResult:
        """Close the books on a run that began at ``began`` with ``cpu`` process time."""
        self.seconds = time.perf_counter() - began
        self.cpu_seconds = time.process_time() - cpu
        self.requests = len(self.latencies_ms)
        return self

    def per_s(self, count: float) -> float:
        return round(count / self.seconds, 1) if self.seconds else 0.0

    def summary(self) -> dict[str, float | dict[int, int]]:
        return {
            "requests_per_s": self.per_s(self.requests),
            "latency_ms_p50": round(percentile(self.latencies_ms, 50), 3),
            "latency_ms_p99": round(percentile(self.latencies_ms, 99), 3),
            "statuses": dict(sorted(self.statuses.items())),
            "load_tool_cpu_us_per_request": round(self.cpu_seconds / self.requests * 1e6, 1)
            if self.requests
            else 0.0,
        }


@contextlib.contextmanager
def _collector_held() -> Iterator[None]:
    """No garbage collection in this process while measuring (one just before)."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class _Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._answer: asyncio.Future[tuple[int, bytes]] | None = None
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(exc or ConnectionResetError("connection closed"))
        if not self.lost.done():
            self.lost.set_result(None)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self._buffer[:end]).decode("latin-1")
        length = 0
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value)
        if len(self._buffer) < end + 4 + length:
            return
        status = int(head.split(" ", 2)[1])
        body = bytes(self._buffer[end + 4 : end + 4 + length])
        del self._buffer[: end + 4 + length]
        if self._answer is not None and not self._answer.done():
            self._answer.set_result((status, body))

    def request(self, raw: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        self._answer = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return self._answer


class HttpLoad:
    """GET requests with fixed headers against one host and port."""

    def __init__(self, host: str, port: int, headers: dict[str, str] | None = None) -> None:
        self.host = host
        self.port = port
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self._template = "GET {} HTTP/1.1\r\nHost: " + f"{host}:{port}\r\n{extra}\r\n"

    def _raw(self, path: str) -> bytes:
        return self._template.format(path).encode()

    async def _connect(self, n: int) -> list[_Connection]:
        loop = asyncio.get_running_loop()
        made = [await loop.create_connection(_Connection, self.host, self.port) for _ in range(n)]
        return [protocol for _, protocol in made]

    @staticmethod
    def _close(connections: list[_Connection]) -> None:
        for c in connections:
            if c.transport is not None:
                c.transport.close()

    async def closed_loop(self, path: Path, seconds: float, connections: int = 16) -> LoadResult:
        """Each connection sends its next request as soon as the last is answered."""
        pool = await self._connect(connections)
        counter = iter(range(1 << 62))
        with _collector_held():
            result = LoadResult()
            cpu = time.process_time()
            began = time.perf_counter()
            deadline = began + seconds

            async def drive(conn: _Connection) -> None:
                while (now := time.perf_counter()) < deadline:
                    status, _ = await conn.request(self._raw(path(next(counter))))
                    result.answered(status, now)

            try:
                await asyncio.gather(*(drive(c) for c in pool))
            finally:
                self._close(pool)
            return result.finish(began, cpu)

    async def open_loop(
        self, path: Path, rate: float, seconds: float, connections: int = 64
    ) -> LoadResult:
        """Requests due at ``rate`` per second, each timed from when it was due: one sent
        late (it waited for a free connection while the server held them all, or behind
        one that did) counts the wait."""
        pool = await self._connect(connections)
        idle: deque[_Connection] = deque(pool)
        freed = asyncio.Event()
        tasks = []
        with _collector_held():
            result = LoadResult()
            cpu = time.process_time()
            began = time.perf_counter()

            async def one(conn: _Connection, i: int, start: float) -> None:
                status, _ = await conn.request(self._raw(path(i)))
                result.answered(status, start)
                idle.append(conn)
                freed.set()

            try:
                for i in range(int(rate * seconds)):
                    due = began + i / rate
                    delay = due - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    while not idle:
                        freed.clear()
                        await freed.wait()
                    tasks.append(asyncio.create_task(one(idle.popleft(), i, due)))
                await asyncio.gather(*tasks)
            finally:
                self._close(pool)
            return result.finish(began, cpu)
