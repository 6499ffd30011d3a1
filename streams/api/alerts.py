"""Fan-out of the ``interventions`` topic to contact-centre screens (Server-Sent Events).

Each API process reads every partition (no consumer group), keeps the newest alerts in
a ring buffer for ``Last-Event-ID`` resumption, and hands each new alert to every
connected screen. Event ids are ``<partition>-<offset>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas import Intervention, decode_intervention
from streams.kafka_security import client_options

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Alert:
    id: str
    intervention: Intervention
    raw: bytes


class AlertHub:
    def __init__(self, bootstrap: str, topic: str, backlog: int = 500) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._backlog = backlog
        self._buffer: deque[Alert] = deque(maxlen=backlog)
        self._subscribers: set[asyncio.Queue[Alert]] = set()
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="alert-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def since(self, last_id: str | None, queue: str | None) -> list[Alert]:
        """Buffered alerts after ``last_id`` (all buffered ones if it is unknown)."""
        alerts = list(self._buffer)
        if last_id is not None:
            ids = [a.id for a in alerts]
            if last_id in ids:
                alerts = alerts[ids.index(last_id) + 1 :]
        return [a for a in alerts if queue is None or a.intervention.queue == queue]

    def subscribe(self) -> asyncio.Queue[Alert]:
        q: asyncio.Queue[Alert] = asyncio.Queue(maxsize=1000)
        self._subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[Alert]) -> None:
        self._subscribers.discard(q)

    async def _run(self) -> None:
        while True:
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("alert fan-out failed; reconnecting")
                await asyncio.sleep(1.0)

    async def _consume(self) -> None:
        consumer = AIOKafkaConsumer(
            self._topic,
            bootstrap_servers=self._bootstrap,
            group_id=None,
            enable_auto_commit=False,
            **client_options(),
        )
        await consumer.start()
        try:
            partitions = consumer.partitions_for_topic(self._topic) or set()
            tps = [TopicPartition(self._topic, p) for p in partitions]
            ends = await consumer.end_offsets(tps) if tps else {}
            for tp in tps:  # start a little back so screens see recent alerts at once
                consumer.seek(tp, max(ends[tp] - self._backlog // max(len(tps), 1), 0))
            self.ready.set()
            while True:
                batches = await consumer.getmany(timeout_ms=500)
                for tp, records in batches.items():
                    for record in records:
                        try:
                            intervention = decode_intervention(record.value or b"")
                        except Exception:
                            continue  # not an intervention: nothing to show
                        alert = Alert(f"{tp.partition}-{record.offset}", intervention,
                                      record.value or b"")  # fmt: skip
                        self._buffer.append(alert)
                        for q in list(self._subscribers):
                            if q.full():
                                self._subscribers.discard(q)  # a screen that stopped reading
                            else:
                                q.put_nowait(alert)
        finally:
            await consumer.stop()
