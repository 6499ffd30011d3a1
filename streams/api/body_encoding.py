"""Compressed request bodies, inflated by the API itself once the key has been checked.

aiohttp would inflate a ``Content-Encoding: gzip`` body as it arrives, before any
handler runs, without limit on the inflated size: a small body that inflates to
gigabytes kept the event loop busy for seconds, and anyone could send one without a
key. The API turns that off (:data:`REQUEST_HANDLING`) and inflates here, after the key
check, never past the body limit.

>>> import gzip
>>> inflated(gzip.compress(b'{"a": 1}'), "gzip", limit=100)
b'{"a": 1}'
>>> inflated(gzip.compress(b"x" * 1000), "gzip", limit=100)
Traceback (most recent call last):
...
streams.api.errors.ApiError: the request body is too large
"""

from __future__ import annotations

import zlib
from typing import Any

from streams.api.errors import ApiError

# handler arguments of the API's application: bodies are not inflated on arrival
REQUEST_HANDLING: dict[str, Any] = {"auto_decompress": False}

_GZIP = 16 + zlib.MAX_WBITS
_ZLIB = zlib.MAX_WBITS
_RAW = -zlib.MAX_WBITS  # what some clients send as deflate
WBITS = {"gzip": (_GZIP,), "x-gzip": (_GZIP,), "deflate": (_ZLIB, _RAW)}


def inflated(raw: bytes, content_encoding: str, limit: int) -> bytes:
    """``raw`` as sent with ``content_encoding`` (none, ``identity``, ``gzip`` or
    ``deflate``), inflated to at most ``limit`` bytes: a 413 past it, a 400 when it does
    not inflate, a 415 for another encoding."""
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding not in WBITS:
        raise ApiError(415, "unsupported_content_encoding", "send the body uncompressed, "
                       "or with Content-Encoding gzip or deflate")  # fmt: skip
    for wbits in WBITS[encoding]:
        inflater = zlib.decompressobj(wbits)
        try:
            body = inflater.decompress(raw, limit + 1)
        except zlib.error:
            continue  # not this form of it
        if len(body) > limit or inflater.unconsumed_tail:
            raise ApiError(413, "body_too_large", "the request body is too large")
        if inflater.eof and not inflater.unused_data:
            return body
    raise ApiError(400, "malformed_body", "the body could not be read: its "
                   "Content-Encoding or chunked encoding is corrupt")  # fmt: skip
