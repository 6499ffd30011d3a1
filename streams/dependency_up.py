"""``moments_dependency_up{dependency}``: whether a process reaches Redis and Kafka, as
its ``/readyz`` says, so that an outage raises an alert (``MomentsDependencyDown``) even
when no batch is retried and no request fails: a worker that fetches nothing has no
batch to retry, and the API answers from Redis while its decisions wait for Kafka.

It costs no request of its own beyond the looks each process takes already: the worker's
group coordinator (watched every 2 s for ``/readyz``, see :mod:`streams.worker_readiness`)
and a bounded PING of Redis every :data:`LOOK_EVERY_S`; the API's Kafka state from what
its consumer and producer last saw (:class:`streams.api.kafka_health.KafkaHealth`) and
Redis from the look its :class:`streams.api.dependency_watch.DependencyLog` takes.

>>> import asyncio
>>> class Store:
...     def __init__(self, answer: object) -> None:
...         self.answer = answer
...     async def ping(self) -> bool:
...         if isinstance(self.answer, Exception):
...             raise self.answer
...         return bool(self.answer)
>>> asyncio.run(redis_answers(Store(True))), asyncio.run(redis_answers(Store(ConnectionError())))
(True, False)
"""

from __future__ import annotations

from typing import Protocol

LOOK_EVERY_S = 5.0  # how often a worker PINGs Redis for the gauge (the API's look: as often)


class Pingable(Protocol):
    async def ping(self) -> bool: ...


async def redis_answers(store: Pingable) -> bool:
    """Whether Redis answers a PING in time (the store bounds it: a frozen Redis must not
    hold a look past its interval)."""
    try:
        return await store.ping()
    except Exception:  # StoreUnavailable, or anything else a dead connection raises
        return False
