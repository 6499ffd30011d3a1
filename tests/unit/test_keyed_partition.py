"""Touchpoints are partitioned as Kafka's Java client does by default (murmur2)."""

from __future__ import annotations

import pytest

from streams.topics import keyed_partition

# murmur2 of these keys as Apache Kafka's own tests give them (signed 32-bit)
JAVA_MURMUR2 = {
    "21": -973932308,
    "foobar": -790332482,
    "a-little-bit-long-string": -985981536,
    "a-little-bit-longer-string": -1486304829,
    "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    "abc": 479470107,
}


@pytest.mark.parametrize(("key", "hashed"), JAVA_MURMUR2.items())
@pytest.mark.parametrize("partitions", [1, 4, 7, 12])
def test_partitions_as_the_java_client(key: str, hashed: int, partitions: int) -> None:
    assert keyed_partition(key.encode(), partitions) == (hashed & 0x7FFFFFFF) % partitions
