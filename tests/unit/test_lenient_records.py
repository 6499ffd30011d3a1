"""A record batch whose header names are not UTF-8 is read all the same (with the
names' other bytes kept as surrogate escapes); aiokafka alone cannot read it."""

from __future__ import annotations

import gzip
import struct

import pytest
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.record.util import calc_crc32c

from streams.lenient_records import LenientMemoryRecords

GZIP = 1


def batch(base_offset: int, compression: int = 0) -> bytes:
    """Three records; the second's header name is the bytes FF FE (not UTF-8)."""
    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=compression, is_transactional=0, producer_id=-1,
        producer_epoch=-1, base_sequence=-1, batch_size=1 << 20,
    )  # fmt: skip
    for n in range(3):
        headers = [("zz" if n == 1 else "ok", b"v")]
        builder.append(n, timestamp=1000 + n, key=b"c1", value=b"v%d" % n, headers=headers)
    raw = bytearray(builder.build())
    struct.pack_into(">q", raw, 0, base_offset)
    if not compression:  # the name is in the clear: written as a Go producer may
        at = raw.find(b"zz")
        raw[at : at + 2] = b"\xff\xfe"
        struct.pack_into(">I", raw, 17, calc_crc32c(bytes(raw[21:])))
    return bytes(raw)


def gzipped(raw: bytes) -> bytes:
    """The same batch with its records compressed (as a producer with gzip sends it)."""
    head = bytearray(raw[:61])  # a v2 batch's header; its records follow
    struct.pack_into(">h", head, 21, struct.unpack_from(">h", head, 21)[0] | GZIP)
    out = head + gzip.compress(raw[61:])
    struct.pack_into(">i", out, 8, len(out) - 12)
    struct.pack_into(">I", out, 17, calc_crc32c(bytes(out[21:])))
    return bytes(out)


def read(records: object) -> list[tuple[int, bytes, list[tuple[str, bytes]]]]:
    out = []
    while records.has_next():  # type: ignore[attr-defined]
        for record in records.next_batch():  # type: ignore[attr-defined]
            out.append((record.offset, record.value, list(record.headers)))
    return out


def test_aiokafka_alone_fails_on_the_record() -> None:
    with pytest.raises(UnicodeDecodeError):
        read(MemoryRecords(batch(0)))


def test_every_record_of_the_batch_and_the_next_is_read_in_order() -> None:
    data = batch(0) + batch(3)
    records = LenientMemoryRecords(data)
    assert records.size_in_bytes() == len(data)
    got = read(records)
    assert [(offset, value) for offset, value, _ in got] == [
        (0, b"v0"), (1, b"v1"), (2, b"v2"), (3, b"v0"), (4, b"v1"), (5, b"v2")
    ]  # fmt: skip
    assert got[1][2] == [("\udcff\udcfe", b"v")]  # the bytes kept, as surrogate escapes
    assert got[0][2] == got[2][2] == [("ok", b"v")]


def test_a_compressed_batch_is_read_too() -> None:
    data = gzipped(batch(7))
    with pytest.raises(UnicodeDecodeError):
        read(MemoryRecords(data))
    got = read(LenientMemoryRecords(data))
    assert [(offset, value) for offset, value, _ in got] == [(7, b"v0"), (8, b"v1"), (9, b"v2")]
    assert got[1][2] == [("\udcff\udcfe", b"v")]


def test_batches_that_decode_are_read_as_aiokafka_reads_them() -> None:
    data = batch(0, compression=GZIP)  # compressed: its names were left as they were
    assert read(LenientMemoryRecords(data)) == read(MemoryRecords(data))
    batches = LenientMemoryRecords(data)
    first = batches.next_batch()
    assert first.base_offset == 0 and first.next_offset == 3 and first.validate_crc()
