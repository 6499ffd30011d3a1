"""The worker's Faust producer: idempotent, and replaced by a new one when the broker says
its numbering of a partition's batches broke.

Faust makes its aiokafka producer idempotent only in transactions (``app.in_transaction``,
``faust/transport/drivers/aiokafka.py Producer._settings_extra``), which Moments does not
use; no Faust setting asks for it alone. A plain producer whose batch the broker wrote,
and whose acknowledgment was lost (a broker restarting, a connection cut), sends the batch
again by itself, and the broker writes it twice: a decision, an alert, a risk example or a
dead letter on its topic twice. An idempotent producer numbers each partition's batches,
and the broker writes a batch sent again once, as the API's producer does
(:mod:`streams.api.producer_renewal`).

aiokafka's idempotent producer never renumbers: once a numbered batch fails unwritten (a
record the topic refuses for good, a batch given up with no leader for its partition), or
the broker forgot the producer, every later batch to that partition fails. Such a failure
starts a new producer (a new producer id), which the worker's later sends use: the batch
that met it is sent again as after any Kafka failure (:mod:`agents.batch_retries`). So
does a record the broker refuses for good, before any later batch meets the gap it left,
and sends wait for a new producer being started: the reduced form of a dead letter the
topic refused (:mod:`agents.reduced_letters`), sent at once to the same partition, would
otherwise meet the gap, and the batch, retried, would send the whole letter again, to be
refused again. The producer replaced stops in the background once what it holds is
settled.

An idempotent producer never gives a batch up while its partition's leader is known: with
Kafka away, a send waits for it; :func:`agents.letter_sends.send_once` bounds the wait.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Mapping
from typing import Any

from faust.transport.drivers import aiokafka as faust_kafka

from agents.batch_retries import refused_by_kafka
from streams.api.producer_renewal import START_WITHIN_S, broke_numbering

log = logging.getLogger(__name__)

IDEMPOTENT = {"acks": "all", "enable_idempotence": True}


class IdempotentProducer(faust_kafka.Producer):
    """Faust's aiokafka producer, idempotent, renewed when its numbering broke."""

    _renewing: asyncio.Task[None] | None = None
    renewals = 0  # producers replaced

    def __post_init__(self) -> None:
        super().__post_init__()
        self._retiring: set[asyncio.Task[None]] = set()

    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), **IDEMPOTENT}

    async def send(self, *args: Any, **kwargs: Any) -> Any:
        if self._renewing is not None:  # not with the producer being replaced
            await asyncio.wait({self._renewing})
        producer = self._producer
        delivery = await super().send(*args, **kwargs)
        if isinstance(delivery, asyncio.Future):
            delivery.add_done_callback(functools.partial(self._heard, producer))
        return delivery

    def _heard(self, producer: Any, delivery: asyncio.Future[Any]) -> None:
        if delivery.cancelled():
            return
        error = delivery.exception()
        if not (broke_numbering(error) or refused_by_kafka(error)):
            return
        if producer is self._producer and self._renewing is None:  # (not one replaced)
            self._renewing = asyncio.get_running_loop().create_task(self._renew())

    async def _renew(self) -> None:
        fresh = self._new_producer()
        try:
            async with asyncio.timeout(START_WITHIN_S):
                await fresh.start()
        except Exception as exc:  # Kafka away: the next broken delivery tries again
            log.warning("the worker's Kafka producer's numbering broke, and a new producer "
                        "could not start (%r); trying again at the next failure", exc)  # fmt: skip
            self._retire(fresh)
            return
        finally:
            self._renewing = None
        if self._producer is None:  # stopped meanwhile
            self._retire(fresh)
            return
        broken, self._producer = self._producer, fresh
        self.renewals += 1
        log.warning("the worker's Kafka producer's numbering of a partition broke (a batch "
                    "failed unwritten, or the broker forgot the producer): sending with a "
                    "new producer from now on (%d so far)", self.renewals)  # fmt: skip
        self._retire(broken)

    def _retire(self, producer: Any) -> None:
        """Stop ``producer`` once what it holds is settled (not waited for)."""
        task = asyncio.get_running_loop().create_task(producer.stop())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def on_stop(self) -> None:
        if self._renewing is not None:
            self._renewing.cancel()
            await asyncio.gather(self._renewing, return_exceptions=True)
        await super().on_stop()
        await asyncio.gather(*self._retiring, return_exceptions=True)
