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
    """
    origins = frozenset(_as_sent(o) for o in raw.split(",") if o.strip())
    bad = sorted(o for o in origins if o != "*" and not _ORIGIN.match(o))
    if bad:
        raise ValueError(f"not an origin (scheme://host[:port]): {', '.join(bad)}")
    return origins


def _as_sent(origin: str) -> str:
    origin = origin.strip().rstrip("/").lower()
    for scheme, port in (("https://", ":443"), ("http://", ":80")):
        if origin.startswith(scheme) and origin.endswith(port):
            return origin.removesuffix(port)
    return origin
