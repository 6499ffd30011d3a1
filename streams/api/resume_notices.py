"""The erasure notices a resumed screen is told first, built once and shared.

A screen that resumes (any ``Last-Event-ID``) may still show alerts about anyone erased
while it was away, so it is told the ref of every erasure of the last day (up to
10,000, some 660 KB), before it has been sent anything on its connection: the same bytes
for every such screen. They were built and encoded anew per stream, 12 ms each at
10,000, so that a key's burst of resumptions held the event loop for seconds; now they
are built when the erasures change, and every resumed stream writes the same chunks.

>>> from streams.api.screen_erasures import RecentErasures
>>> recent = RecentErasures()
>>> recent.add("c-1", "ab12")
>>> notices = ResumeNotices(recent)
>>> notices.chunks(16_384)
(b'event: erasure\\ndata: {"customer_ref":"ab12"}\\n\\n',)
>>> notices.chunks(16_384) is notices.chunks(16_384), notices.builds
(True, 1)
"""

from __future__ import annotations

import msgspec

from streams.api.screen_erasures import RecentErasures

_json = msgspec.json.Encoder()


def erased_sse(told: dict[str, str]) -> bytes:
    """An erasure notice. No id: resuming after it is resuming after the alert before it."""
    return b"event: erasure\ndata: " + _json.encode(told) + b"\n\n"


class ResumeNotices:
    """The notices of :class:`RecentErasures` a resumed screen is told, by ref (it is
    never told an id: see :class:`~streams.api.screen_erasures.Screen`), in writes of
    about ``chunk_bytes`` each; rebuilt only when the erasures (or the size) change."""

    def __init__(self, recent: RecentErasures) -> None:
        self._recent = recent
        self._built: tuple[int, int] | None = None  # (the erasures' version, chunk size)
        self._chunks: tuple[bytes, ...] = ()
        self.builds = 0  # how many times they were built (for tests)

    def chunks(self, chunk_bytes: int) -> tuple[bytes, ...]:
        """The notices, oldest erasure first, cut after the notice that takes a chunk to
        ``chunk_bytes`` or past it."""
        current = (self._recent.version, chunk_bytes)
        if current != self._built:
            self._chunks = _chunked(self._recent, chunk_bytes)
            self._built = current
            self.builds += 1
        return self._chunks


def _chunked(recent: RecentErasures, chunk_bytes: int) -> tuple[bytes, ...]:
    chunks, chunk = [], bytearray()
    for erased in recent.erasures():
        chunk += erased_sse({"customer_ref": erased.customer_ref})
        if len(chunk) >= chunk_bytes:
            chunks.append(bytes(chunk))
            chunk.clear()
    if chunk:
        chunks.append(bytes(chunk))
    return tuple(chunks)
