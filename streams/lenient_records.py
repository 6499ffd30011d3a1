"""Kafka records whose header names are not UTF-8, read all the same.

Kafka's protocol calls a header name a string, but brokers do not check that it is
UTF-8, and some clients (Go's, C's) let producers write any bytes there. aiokafka decodes
header names strictly: a record with such a name fails every fetch of its partition, so
its consumer stalls on it for good, and the record never reaches Moments to be
dead-lettered. :func:`install` makes every consumer of the process read a batch that
fails so again with its header names decoded leniently (the bytes that are not UTF-8 kept
as surrogate escapes), so that its records flow on like any other: a touchpoint in one
is applied, or dead-lettered for what its value holds. Batches that decode are read by
aiokafka as before.

This reaches into aiokafka's fetcher and its pure-Python record reader (the version is
pinned in ``constraints.txt``); ``tests/unit/test_lenient_records.py`` reads such a batch
through it, and fails if aiokafka changes what this relies on.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import aiokafka.consumer.fetcher as fetcher
from aiokafka.record.default_records import _DefaultRecordBatchPy
from aiokafka.record.memory_records import MemoryRecords

_FRAME = struct.Struct(">qi")  # a batch's base offset and the length of what follows


class _LenientBuffer(bytearray):
    """A record buffer whose slices decode leniently (how the reader gets header names)."""

    def __getitem__(self, index: Any) -> Any:
        part = super().__getitem__(index)
        return _LenientBuffer(part) if isinstance(index, slice) else part

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return super().decode(encoding, "surrogateescape")


def lenient_batch(raw: bytes | memoryview) -> Iterator[Any]:
    """The records of one framed record batch (v2), header names decoded leniently."""
    batch = _DefaultRecordBatchPy(raw)
    batch._maybe_uncompress()
    batch._buffer = _LenientBuffer(batch._buffer)
    return iter(batch)


class _Batch:
    """One batch as aiokafka reads it, read again leniently should its records fail."""

    def __init__(self, batch: Any, raw: memoryview) -> None:
        self._batch = batch
        self._raw = raw

    def __getattr__(self, name: str) -> Any:
        return getattr(self._batch, name)

    def __iter__(self) -> Iterator[Any]:
        # read whole by aiokafka's own reader (no Python step per record), or not at all
        try:
            return iter(list(self._batch))
        except UnicodeDecodeError:
            return lenient_batch(self._raw)

    def __next__(self) -> Any:  # control batches are read a record at a time
        return next(self._batch)


class LenientMemoryRecords:
    """aiokafka's record sets, whose batches fall back to :func:`lenient_batch`."""

    def __init__(self, data: bytes) -> None:
        self._records = MemoryRecords(data)
        self._data = memoryview(data)
        self._pos = 0

    def size_in_bytes(self) -> int:
        return int(self._records.size_in_bytes())

    def has_next(self) -> bool:
        return bool(self._records.has_next())

    def next_batch(self) -> Any:
        batch = self._records.next_batch()
        if batch is None:
            return None
        _, length = _FRAME.unpack_from(self._data, self._pos)
        end = self._pos + _FRAME.size + length
        raw, self._pos = self._data[self._pos : end], end
        return _Batch(batch, raw) if getattr(batch, "magic", 2) >= 2 else batch


def install() -> None:
    """Read every consumer's fetched records through :class:`LenientMemoryRecords`."""
    fetcher.MemoryRecords = LenientMemoryRecords
