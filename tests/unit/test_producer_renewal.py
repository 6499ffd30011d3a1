"""The API's producer is idempotent, and is replaced by a new one when the broker says its
numbering of a partition broke (aiokafka's never renumbers; the real broker is in
tests/integration/test_api_idempotent_producer.py)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    KafkaConnectionError,
    OutOfOrderSequenceNumber,
    RequestTimedOutError,
    UnknownProducerId,
)

from streams.api.producer_renewal import RenewingProducer
from streams.api.server import api_producer
from streams.settings import Settings


async def test_the_api_producer_is_idempotent_and_waits_for_every_replica() -> None:
    producer = api_producer(Settings())
    try:
        assert producer._txn_manager is not None  # aiokafka's mark of enable_idempotence
        assert producer._txn_manager.transactional_id is None  # not transactional
        assert producer._sender._acks == -1  # acks="all"
    finally:
        await producer.stop()


class Producer:
    """Stands in for an AIOKafkaProducer: each delivery fails with ``fails`` (or not)."""

    def __init__(self, starts: bool = True) -> None:
        self.fails: BaseException | None = None
        self.starts, self.started, self.stopped = starts, False, False

    async def start(self) -> None:
        if not self.starts:
            raise KafkaConnectionError("no broker")
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> asyncio.Future[Any]:
        delivery: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.fails is None:
            delivery.set_result(None)
        else:
            delivery.set_exception(self.fails)
        return delivery


class Maker:
    def __init__(self, *starts: bool) -> None:
        self.starts = list(starts)
        self.made: list[Producer] = []

    def __call__(self) -> AIOKafkaProducer:
        self.made.append(Producer(self.starts.pop(0) if self.starts else True))
        return cast(AIOKafkaProducer, self.made[-1])


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def failed_send(renewing: RenewingProducer) -> None:
    delivery = await renewing.send("decisions", b"v", key=b"k")
    await asyncio.gather(delivery, return_exceptions=True)
    await settle()


async def test_a_broken_numbering_starts_a_new_producer_and_retires_the_old() -> None:
    make = Maker()
    renewing = RenewingProducer(make)
    await renewing.start()
    make.made[0].fails = OutOfOrderSequenceNumber()
    await failed_send(renewing)
    assert len(make.made) == 2 and renewing.current is make.made[1]
    assert make.made[1].started and make.made[0].stopped and renewing.renewals == 1
    await failed_send(renewing)  # the new one delivers
    assert len(make.made) == 2
    make.made[1].fails = UnknownProducerId()  # the broker forgot the producer
    await failed_send(renewing)
    assert len(make.made) == 3 and renewing.renewals == 2
    await renewing.stop()
    assert make.made[2].stopped


async def test_other_failures_keep_the_producer() -> None:
    make = Maker()
    renewing = RenewingProducer(make)
    for error in (RequestTimedOutError(), KafkaConnectionError("away"), ValueError("x")):
        make.made[0].fails = error
        await failed_send(renewing)
    assert len(make.made) == 1 and renewing.renewals == 0


async def test_a_replaced_producers_late_failures_start_no_other() -> None:
    make = Maker()
    renewing = RenewingProducer(make)
    old = make.made[0]
    old.fails = OutOfOrderSequenceNumber()
    late = await renewing.send("decisions", b"v", key=b"k")  # sent before the renewal
    waiting: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    old_send = old.send

    async def hold(topic: str, value: bytes, key: bytes | None = None) -> asyncio.Future[Any]:
        await old_send(topic, value, key)
        return waiting

    old.send = hold  # type: ignore[method-assign]
    pending = await renewing.send("decisions", b"w", key=b"k")
    await asyncio.gather(late, return_exceptions=True)
    await settle()
    assert len(make.made) == 2
    waiting.set_exception(OutOfOrderSequenceNumber())  # the old one's last batch fails
    await asyncio.gather(pending, return_exceptions=True)
    await settle()
    assert len(make.made) == 2 and renewing.current is make.made[1]


async def test_a_new_producer_that_cannot_start_leaves_the_old_until_the_next_failure() -> None:
    make = Maker(True, False)
    renewing = RenewingProducer(make)
    make.made[0].fails = OutOfOrderSequenceNumber()
    await failed_send(renewing)
    assert len(make.made) == 2 and renewing.current is make.made[0]
    assert make.made[1].stopped and renewing.renewals == 0
    await failed_send(renewing)
    assert len(make.made) == 3 and renewing.current is make.made[2]
