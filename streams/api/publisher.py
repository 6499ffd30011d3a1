"""Keyed records to Kafka in whole batches: one batch per partition, not one send each.

Records are partitioned exactly as the Kafka producer itself would (murmur2 of the
key over the topic's partitions), so consumers see the same per-customer order as
with ``producer.send``; building the batches directly costs a fraction of the CPU.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

_partitioner = DefaultPartitioner()
Delivery = tuple[asyncio.Future[object], int]  # resolves when the batch is written


class KeyedPublisher:
    """Sends lists of (key, value) records to a topic, batched per partition."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer

    async def publish(self, topic: str, records: Sequence[tuple[bytes, bytes]]) -> list[Delivery]:
        """Queue the records; a delivery future, and how many records it covers, per batch."""
        if not records:
            return []
        partitions = sorted(await self._producer.partitions_for(topic))
        by_partition: dict[int, list[tuple[bytes, bytes]]] = {}
        for key, value in records:
            partition = _partitioner(key, partitions, partitions)
            by_partition.setdefault(partition, []).append((key, value))
        futures = []
        for partition, items in by_partition.items():
            batch = self._producer.create_batch()
            for key, value in items:
                if batch.append(key=key, value=value, timestamp=None) is None:
                    futures.append(await self._send(batch, topic, partition))
                    batch = self._producer.create_batch()
                    if batch.append(key=key, value=value, timestamp=None) is None:
                        raise ValueError("a record is larger than the producer's batch size")
            if batch.record_count():
                futures.append(await self._send(batch, topic, partition))
        return futures

    async def _send(self, batch: Any, topic: str, partition: int) -> Delivery:
        batch.close()  # nothing else may join it once it is handed over
        count = int(batch.record_count())
        future: asyncio.Future[object] = await self._producer.send_batch(
            batch, topic, partition=partition
        )
        return future, count
