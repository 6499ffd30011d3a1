"""Whether a worker can do its work with Kafka now, as its ``/readyz`` reports it.

A worker is ready once it holds partitions and its consumer group's coordinator answers.
The coordinator is the broker the worker heartbeats every few seconds: when a heartbeat
gets no answer, the consumer forgets the coordinator and looks for it again, so an
unknown coordinator means the broker is away (or the group is moving to another broker,
a moment's work). Holding partitions alone said ``ok`` while the broker was down, since
the partitions stay assigned until the group meets again.

>>> class Group:
...     coordinator_id = None
>>> kafka_readiness(rebalancing=False, assigned=True, coordinator=Group())
'down: the group coordinator does not answer'
>>> Group.coordinator_id = 1
>>> kafka_readiness(rebalancing=False, assigned=True, coordinator=Group())
'ok'
>>> kafka_readiness(rebalancing=False, assigned=False, coordinator=Group())
'no partitions assigned yet'
"""

from __future__ import annotations

from typing import Any

OK = "ok"
COORDINATOR_AWAY = "down: the group coordinator does not answer"


def kafka_readiness(rebalancing: bool, assigned: bool, coordinator: Any) -> str:
    """``ok``, or what keeps the worker from its partitions. ``coordinator``: the
    consumer's group coordinator (``None`` when the consumer has none to show)."""
    if rebalancing:
        return "rebalancing"
    if not assigned:
        return "no partitions assigned yet"
    if coordinator is not None and coordinator.coordinator_id is None:
        return COORDINATOR_AWAY
    return OK


def group_coordinator(app: Any) -> Any:
    """The group coordinator of a Faust app's Kafka consumer, ``None`` when the consumer
    has not been made (or a Faust version keeps it elsewhere: the readiness then rests
    on the assignment alone)."""
    thread = getattr(app.consumer, "_thread", None)
    consumer = getattr(thread, "_consumer", None)
    return getattr(consumer, "_coordinator", None)
