"""Every compression codec a Kafka producer or topic may use is one Moments' consumers can
decode: a batch of records compressed with one they cannot fails every fetch of its
partition, so the worker crashed on it, and again at every restart."""

from __future__ import annotations

import pytest
from aiokafka import codec

CODECS = {
    "gzip": codec.has_gzip,
    "snappy": codec.has_snappy,
    "lz4": codec.has_lz4,
    "zstd": codec.has_zstd,
}


@pytest.mark.parametrize("name", sorted(CODECS))
def test_the_codec_is_installed(name: str) -> None:
    assert CODECS[name](), f"aiokafka cannot decode {name}: pyproject.toml's aiokafka extras"


@pytest.mark.parametrize("name", sorted(CODECS))
def test_a_batch_compressed_with_the_codec_reads_back(name: str) -> None:
    from aiokafka.record.default_records import (
        DefaultRecordBatch,
        DefaultRecordBatchBuilder,
    )

    attribute = {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}[name]
    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=attribute, is_transactional=False,
        producer_id=-1, producer_epoch=-1, base_sequence=-1, batch_size=1 << 20,
    )  # fmt: skip
    builder.append(0, timestamp=0, key=b"c-1", value=b'{"type": "web_click"}', headers=[])
    (record,) = DefaultRecordBatch(bytes(builder.build()))
    assert (record.key, record.value) == (b"c-1", b'{"type": "web_click"}')
