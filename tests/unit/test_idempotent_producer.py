"""The worker's Faust producer is idempotent and waits for every replica (Faust's alone
is not, outside transactions), and is replaced by a new one when the broker says its
numbering of a partition broke (the lost acknowledgment against a real broker:
tests/integration/test_lost_produce_reply.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
from aiokafka.errors import (
    KafkaConnectionError,
    MessageSizeTooLargeError,
    OutOfOrderSequenceNumber,
)

from streams.committed_worker import use_committed_reads
from streams.idempotent_producer import IdempotentProducer


def _app() -> Any:
    return faust.App("idempotent-test", broker="kafka://127.0.0.1:1", autodiscover=False)


async def test_the_worker_producer_is_idempotent_and_waits_for_every_replica() -> None:
    app = _app()
    use_committed_reads(app)
    assert isinstance(app.producer, IdempotentProducer)
    producer = app.producer._new_producer()
    try:
        assert producer._txn_manager is not None  # aiokafka's mark of enable_idempotence
        assert producer._txn_manager.transactional_id is None  # not transactional
        assert producer._sender._acks == -1  # acks="all"
    finally:
        await producer.stop()


async def test_fausts_producer_alone_is_not_idempotent() -> None:
    """Why the worker's transport has its own: should Faust make it so by itself one day,
    this fails."""
    producer = _app().producer._new_producer()
    try:
        assert producer._txn_manager is None
    finally:
        await producer.stop()


class Client:
    """Stands in for an AIOKafkaProducer: each send's delivery fails with ``fails``."""

    def __init__(self, starts: bool = True, start_s: float = 0.0) -> None:
        self.fails: BaseException | None = None
        self.starts, self.started, self.stopped = starts, False, False
        self.start_s = start_s  # how long starting takes (a broker's round trips)

    async def start(self) -> None:
        await asyncio.sleep(self.start_s)
        if not self.starts:
            raise KafkaConnectionError("no broker")
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, topic: str, value: bytes | None, **_: Any) -> asyncio.Future[Any]:
        delivery: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.fails is None:
            delivery.set_result(None)
        else:
            delivery.set_exception(self.fails)
        return delivery


def _producer(*clients: Client) -> tuple[IdempotentProducer, list[Client]]:
    app = _app()
    use_committed_reads(app)
    producer: IdempotentProducer = app.producer
    made = list(clients)
    producer._new_producer = lambda transactional_id=None: made.pop(0)  # type: ignore[method-assign]
    producer._producer = made.pop(0)
    return producer, list(clients)


async def _send(producer: IdempotentProducer) -> asyncio.Future[Any]:
    delivery: asyncio.Future[Any] = await producer.send("t", b"k", b"v", None, None, None)
    await asyncio.gather(delivery, return_exceptions=True)
    for _ in range(5):  # the renewal's task runs
        await asyncio.sleep(0)
    return delivery


async def test_a_broken_numbering_starts_a_new_producer_for_later_sends() -> None:
    producer, (broken, fresh) = _producer(Client(), Client())
    broken.fails = OutOfOrderSequenceNumber()
    failed = await _send(producer)
    assert isinstance(failed.exception(), OutOfOrderSequenceNumber)  # sent again by its batch
    assert producer._producer is fresh and fresh.started and producer.renewals == 1
    await asyncio.gather(*producer._retiring)
    assert broken.stopped
    assert (await _send(producer)).exception() is None


async def test_other_failures_keep_the_producer() -> None:
    producer, (client, spare) = _producer(Client(), Client())
    client.fails = KafkaConnectionError("away")
    await _send(producer)
    assert producer._producer is client and producer.renewals == 0 and not spare.started


async def test_a_new_producer_that_cannot_start_is_tried_again_at_the_next_failure() -> None:
    producer, (broken, unstarted, fresh) = _producer(Client(), Client(starts=False), Client())
    broken.fails = OutOfOrderSequenceNumber()
    await _send(producer)
    assert producer._producer is broken and producer.renewals == 0
    await asyncio.gather(*producer._retiring)
    assert unstarted.stopped
    await _send(producer)
    assert producer._producer is fresh and producer.renewals == 1


async def test_a_record_the_broker_refuses_starts_a_new_producer_before_the_next_send() -> None:
    """The refused batch left a gap in the partition's numbering: the reduced letter sent at
    once after it goes through the new producer, not into the gap."""
    producer, (refusing, fresh) = _producer(Client(), Client(start_s=0.05))
    refusing.fails = MessageSizeTooLargeError()
    delivery: asyncio.Future[Any] = await producer.send("t", b"k", b"v", None, None, None)
    await asyncio.gather(delivery, return_exceptions=True)  # no time for the renewal
    assert (await _send(producer)).exception() is None
    assert producer._producer is fresh and producer.renewals == 1
