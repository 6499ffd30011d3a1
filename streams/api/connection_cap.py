"""How many client connections one API process holds open at once, and the answer to
one past that: a JSON 503 written as the connection opens, and the connection closed.

Each connection holds a file descriptor; past the process's limit on open files, new
connections, to clients and to Redis and Kafka alike, fail until some close (an abuse
drill's 1,200 idle connections took every descriptor a 1,024 limit gave). The idle and
body timeouts (``MOMENTS_API_IDLE_TIMEOUT_S``, ``MOMENTS_API_BODY_TIMEOUT_S``) close
connections that do nothing; the cap bounds those that stay busy.

>>> connection_cap(0, open_files=1024)
768
>>> connection_cap(100, open_files=1024), connection_cap(5000, open_files=1024)
(100, 768)
>>> connection_cap(0, open_files=200)
64
"""

from __future__ import annotations

import resource

import msgspec

# descriptors kept for what the process itself opens: its connections to Redis and to
# each Kafka broker, the catalogue and model files, the event loop's own
KEPT_FOR_THE_PROCESS = 256
LEAST = 64  # however low the limit on open files, some clients are served
RETRY_AFTER_S = 1


def connection_cap(configured: int, open_files: int | None = None) -> int:
    """The connections to hold at once: ``configured`` (``MOMENTS_API_MAX_CONNECTIONS``;
    0: as many as the limit on open files leaves), never more than that limit leaves."""
    if open_files is None:
        open_files, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if open_files == resource.RLIM_INFINITY:
        leaves = configured or 1 << 20
    else:
        leaves = max(open_files - KEPT_FOR_THE_PROCESS, LEAST)
    return min(configured, leaves) if configured else leaves


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
