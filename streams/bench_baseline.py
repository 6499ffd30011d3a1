"""The benchmark's baseline: a plain aiokafka loop that consumes, decodes and produces.

No Faust, no Redis: the least work a consumer of ``touchpoints`` can do that still
turns each decision moment into a record on an output topic. ``moments bench`` runs
it beside the real pipeline on the same broker to put the pipeline's figures in scale.
"""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import UTC, datetime

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from agents.moments import moment_for
from schemas import InvalidEvent, decode_touchpoint
from streams.committed_reads import READ_COMMITTED
from streams.kafka_security import client_options


class BaselineDecision(msgspec.Struct):
    decision_id: str
    customer_id: str
    ts: datetime
    channel: str
    trigger_event_id: str


async def run(bootstrap: str, source: str, sink: str, group: str) -> None:
    encoder = msgspec.json.Encoder()
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=True,
        isolation_level=READ_COMMITTED,  # as the worker reads
        **client_options(),
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=1, **client_options()
    )
    await consumer.start()
    await producer.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=100, max_records=500)
            pending = []
            for records in batches.values():
                for record in records:
                    try:
                        event = decode_touchpoint(record.value or b"")
                    except InvalidEvent:
                        continue
                    moment = moment_for(event)  # the same decision moments as Moments
                    if moment is None:
                        continue
                    decision = BaselineDecision(
                        decision_id=moment.decision_id,
                        customer_id=event.customer_id,
                        ts=datetime.now(UTC),
                        channel=moment.channel,
                        trigger_event_id=event.event_id,
                    )
                    pending.append(
                        await producer.send(sink, encoder.encode(decision), key=record.key)
                    )
            if pending:
                await asyncio.gather(*pending)
    finally:
        await consumer.stop()
        await producer.stop()


def main() -> None:
    asyncio.run(
        run(
            os.environ["MOMENTS_KAFKA_BOOTSTRAP"],
            os.environ["BENCH_SOURCE"],
            os.environ["BENCH_SINK"],
            os.environ["BENCH_GROUP"],
        )
    )


if __name__ == "__main__":
    main()
