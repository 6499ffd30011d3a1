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

# Handler arguments of the API's application: bodies are not inflated on arrival, and a
# request's head holds at most MAX_HEADERS lines of at most MAX_FIELD_BYTES each (a JSON
# 400 past them). aiohttp's own 128 lines let a head that never ends hold some 2 MiB of
# the process's memory, no key needed: 300 such connections took an API from 173 to
# 731 MiB. No client of the API sends more than a dozen lines; a line keeps aiohttp's
# 8,190 bytes (nginx's 8 KiB too), which a web shop's cookies fit in when the API shares
# its origin.
MAX_HEADERS = 32
MAX_FIELD_BYTES = 8190
REQUEST_HANDLING: dict[str, Any] = {
    "auto_decompress": False, "max_headers": MAX_HEADERS, "max_field_size": MAX_FIELD_BYTES,
}  # fmt: skip

_GZIP = 16 + zlib.MAX_WBITS
_ZLIB = zlib.MAX_WBITS
_RAW = -zlib.MAX_WBITS  # what some clients send as deflate
WBITS = {"gzip": (_GZIP,), "x-gzip": (_GZIP,), "deflate": (_ZLIB, _RAW)}
MAX_MEMBERS = 32  # gzip members in one body: thousands of empty ones held the loop a second


def check_transfer_coding(transfer_encodings: list[str]) -> None:
    """A 400 for a body sent with a transfer coding other than ``chunked`` (``gzip,
    chunked``, say), given the request's ``Transfer-Encoding`` headers: aiohttp reads
    the chunks and hands their coded bytes on as the body, which was answered as JSON
    that is not UTF-8. A compressed body comes with ``Content-Encoding``.

    >>> check_transfer_coding(["chunked"])
    >>> check_transfer_coding(["gzip, chunked"])
    Traceback (most recent call last):
    ...
    streams.api.errors.ApiError: a body may be sent with Transfer-Encoding chunked only ...
    """
    codings = [c.strip().lower() for value in transfer_encodings for c in value.split(",")]
    if any(coding not in ("chunked", "") for coding in codings):
        raise ApiError(400, "unsupported_transfer_encoding", "a body may be sent with "
                       "Transfer-Encoding chunked only (send it compressed with "
                       "Content-Encoding gzip or deflate)")  # fmt: skip


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
        body = _inflate(raw, wbits, limit)
        if body is not None:
            return body
    raise ApiError(400, "malformed_body", "the body could not be read: its "
                   "Content-Encoding or chunked encoding is corrupt")  # fmt: skip


def _inflate(raw: bytes, wbits: int, limit: int) -> bytes | None:
    """``raw`` inflated as ``wbits`` says, or ``None`` when it is not of that form; gzip
    may come as several members one after the other (RFC 1952), read as one body, up to
    :data:`MAX_MEMBERS` of them (each costs a pass over what follows it).

    >>> import gzip
    >>> _inflate(gzip.compress(b"[1,") + gzip.compress(b"2]"), _GZIP, limit=100)
    b'[1,2]'
    >>> _inflate(gzip.compress(b"[1]") + b"garbage", _GZIP, limit=100) is None
    True
    >>> _inflate(gzip.compress(b"") * (MAX_MEMBERS + 1), _GZIP, limit=100) is None
    True
    """
    parts: list[bytes] = []
    size, rest = 0, memoryview(raw)
    for _ in range(MAX_MEMBERS):
        inflater = zlib.decompressobj(wbits)
        try:  # at most one byte past the limit (a max_length of 0 would mean no limit)
            part = inflater.decompress(rest, limit + 1 - size)
        except zlib.error:
            return None  # not this form of it
        parts.append(part)
        size += len(part)
        if size > limit or inflater.unconsumed_tail:
            raise ApiError(413, "body_too_large", "the request body is too large")
        if not inflater.eof:
            return None  # cut short
        if not inflater.unused_data:
            return b"".join(parts)
        if wbits != _GZIP:
            return None  # something after the one stream deflate holds
        rest = rest[len(rest) - len(inflater.unused_data) :]
    return None  # more members than any client writes
