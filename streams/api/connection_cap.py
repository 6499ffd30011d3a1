"""How many client connections one API process holds open at once, and the answer to
one past that: a JSON 503 written as the connection opens, and the connection closed.

Each connection holds a file descriptor; past the process's limit on open files, new
connections, to clients and to Redis and Kafka alike, fail until some close (an abuse
drill's 1,200 idle connections took every descriptor a 1,024 limit gave). Each may also
hold memory: a head that never ends, at the limits of :mod:`streams.api.body_encoding`,
about half a MiB once parsed (300 heads of 120 lines took an API from 173 to 731 MiB,
past the 512 MiB its pod may use, no key needed; of 31 lines, to 315 MiB). The idle and
body timeouts (``MOMENTS_API_IDLE_TIMEOUT_S``, ``MOMENTS_API_BODY_TIMEOUT_S``) close
connections that do nothing; the cap bounds those that stay busy, by descriptors and by
the memory the process may use (its cgroup's limit, or the machine's memory).

>>> MiB = 2**20
>>> connection_cap(0, open_files=1024, memory=64 * 1024 * MiB)
768
>>> connection_cap(100, open_files=1024), connection_cap(5000, open_files=1024)
(100, 768)
>>> connection_cap(0, open_files=200, memory=64 * 1024 * MiB)
64
>>> connection_cap(0, open_files=20_000, memory=512 * MiB, bodies=64 * MiB)  # a pod's
384
>>> connection_cap(0, open_files=20_000, memory=256 * MiB)
64
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

import msgspec

# descriptors kept for what the process itself opens: its connections to Redis and to
# each Kafka broker, the catalogue and model files, the event loop's own
KEPT_FOR_THE_PROCESS = 256
LEAST = 64  # however low the limit on open files, some clients are served
RETRY_AFTER_S = 1
# memory kept for the process itself (a fresh API uses some 175 MiB: models, catalogue,
# caches), besides the request bodies it receives (MOMENTS_API_BODY_BUDGET_BYTES)
MEMORY_FOR_THE_PROCESS = 256 * 2**20
# what one connection may hold at worst: a head of 32 lines of 8 KiB, parsed
MEMORY_PER_CONNECTION = 2**19
# where the process's cgroup says how much memory it may use (v2, then v1)
CGROUP_LIMITS = (
    Path("/sys/fs/cgroup/memory.max"),
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
)


def connection_cap(
    configured: int, open_files: int | None = None, memory: int | None = None, bodies: int = 0
) -> int:
    """The connections to hold at once: ``configured`` (``MOMENTS_API_MAX_CONNECTIONS``;
    0: as many as the limit on open files leaves, and as ``memory``, the bytes the process
    may use, holds at :data:`MEMORY_PER_CONNECTION` each once the process's own and
    ``bodies``, its body budget, are kept), never more than the limit on open files
    leaves."""
    if open_files is None:
        open_files, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if open_files == resource.RLIM_INFINITY:
        leaves = configured or 1 << 20
    else:
        leaves = max(open_files - KEPT_FOR_THE_PROCESS, LEAST)
    if configured:
        return min(configured, leaves)
    memory = memory_limit() if memory is None else memory
    holds = (memory - MEMORY_FOR_THE_PROCESS - bodies) // MEMORY_PER_CONNECTION
    return min(leaves, max(holds, LEAST))


def memory_limit(limits: tuple[Path, ...] = CGROUP_LIMITS) -> int:
    """The bytes of memory this process may use: its cgroup's limit (a container's, a
    pod's), or the machine's memory when it has none (or less).

    >>> memory_limit(()) == machine_memory()
    True
    """
    machine = machine_memory()
    for path in limits:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit():  # "max": none
            return min(int(text), machine)
    return machine


def machine_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _overloaded() -> bytes:
    body = msgspec.json.encode({
        "error": "too_many_connections",
        "message": "this API process holds as many connections as it may; retry shortly",
        "details": [{"retry_after_s": RETRY_AFTER_S}],
    })  # fmt: skip
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nRetry-After: {RETRY_AFTER_S}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


OVERLOADED = _overloaded()  # written whole as the connection opens, before any request
