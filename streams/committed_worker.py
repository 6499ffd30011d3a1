"""The worker's Faust consumer reads committed records (see :mod:`streams.committed_reads`).

Faust builds the worker's ``AIOKafkaConsumer`` itself
(``faust/transport/drivers/aiokafka.py``, ``_create_worker_consumer``) and takes no
isolation level: it reads committed only when ``app.in_transaction``, a setting that also
turns on Faust's transactional producing and commits, which Moments does not use.
:func:`use_committed_reads` gives one app a transport whose worker consumer is Faust's
own, set to read committed before it starts (aiokafka hands the level to its fetcher when
it starts, from the attribute its constructor set). That is narrower than patching
``AIOKafkaConsumer`` for the whole process, as ``streams/lenient_records.py`` must patch
the fetcher: no other consumer changes, nor any other setting of this one. It relies on
aiokafka's ``_isolation_level`` (the version is pinned in ``constraints.txt``);
``tests/unit/test_committed_worker.py`` fails if that changes.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as faust_kafka

from streams.committed_reads import READ_COMMITTED


def read_committed(consumer: Any) -> Any:
    """``consumer`` (an ``AIOKafkaConsumer`` not started yet), set to read committed."""
    if not hasattr(consumer, "_isolation_level"):
        raise RuntimeError("aiokafka keeps no _isolation_level: see streams/committed_worker")
    consumer._isolation_level = READ_COMMITTED
    return consumer


class CommittedConsumerThread(faust_kafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, whose worker consumer reads committed records."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        return read_committed(super()._create_worker_consumer(transport))


class CommittedConsumer(faust_kafka.Consumer):
    """Faust's aiokafka consumer, on a :class:`CommittedConsumerThread`."""

    def _new_consumer_thread(self) -> CommittedConsumerThread:
        return CommittedConsumerThread(self, loop=self.loop, beacon=self.beacon)


class CommittedTransport(faust_kafka.Transport):
    """Faust's aiokafka transport, whose consumers read committed records."""

    Consumer = CommittedConsumer


def use_committed_reads(app: Any) -> None:
    """Make ``app`` (a Faust app whose transport nothing has used yet) read committed."""
    app.transport = CommittedTransport(app.conf.broker_consumer, app)
