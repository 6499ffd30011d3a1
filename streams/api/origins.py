"""Web pages' origins, as the CORS settings and origin-bound API keys name them."""

from __future__ import annotations

import re

_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?\Z")


def parse_origins(raw: str) -> frozenset[str]:
    """``"https://shop.example, http://localhost:3000"``, or ``"*"`` for any origin.

    Written as browsers send them in ``Origin``: in lower case, without a default port.

    >>> sorted(parse_origins("https://a.example, http://localhost:3000"))
    ['http://localhost:3000', 'https://a.example']
    >>> sorted(parse_origins("https://Shop.Example:443, http://B.example:80"))
    ['http://b.example', 'https://shop.example']
    >>> sorted(parse_origins("http://localhost:03000, https://a.example:0443"))
    ['http://localhost:3000', 'https://a.example']
    """
    origins = frozenset(_as_sent(o) for o in raw.split(",") if o.strip())
    bad = sorted(o for o in origins if o != "*" and not _is_origin(o))
    if bad:
        raise ValueError(f"not an origin (scheme://host[:port]): {', '.join(map(repr, bad))}")
    return origins


def _is_origin(origin: str) -> bool:
    port = _PORT.search(origin)
    return bool(_ORIGIN.match(origin)) and (port is None or 0 < int(port[1]) <= 65_535)


_PORT = re.compile(r":(\d{1,5})\Z")
_DEFAULT_PORTS = {"https://": 443, "http://": 80}


def _as_sent(origin: str) -> str:
    origin = origin.strip().rstrip("/").lower()
    written = _PORT.search(origin)
    if written is None or "://" not in origin[: written.start()]:
        return origin
    port = int(written[1])  # as browsers write it: no leading zeros
    host = origin[: written.start()]
    if any(host.startswith(s) and port == p for s, p in _DEFAULT_PORTS.items()):
        return host
    return f"{host}:{port}"
