"""Whether a worker can do its work with Kafka now, as its ``/readyz`` reports it.

A worker is ready once it holds partitions and its consumer group's coordinator answers.
The coordinator is the broker the worker heartbeats every few seconds: when a heartbeat
is refused, the consumer forgets the coordinator and looks for it again, so an unknown
coordinator means the broker is away (or the group is moving to another broker, a
moment's work). Holding partitions alone said ``ok`` while the broker was down, since
the partitions stay assigned until the group meets again. A broker that stops answering
without refusing (frozen, or cut off by the network) leaves a request waiting for the
whole request timeout (90 s) before the consumer forgets it: :func:`watch_coordinator`
notes the requests to the coordinator (heartbeats, commits; not the joins, which wait
for the whole group) under way, and one that has waited the session timeout counts as
the coordinator away too.

>>> class Group:
...     coordinator_id = None
>>> kafka_readiness(rebalancing=False, assigned=True, coordinator=Group())
'down: the group coordinator does not answer'
>>> Group.coordinator_id = 1
>>> kafka_readiness(rebalancing=False, assigned=True, coordinator=Group())
'ok'
>>> kafka_readiness(rebalancing=False, assigned=False, coordinator=Group())
'no partitions assigned yet'

A heartbeat that waits (``answer``, not given yet) past ``silent_for_s``:

>>> import asyncio
>>> async def frozen_broker() -> list[str]:
...     now, answer = [100.0], asyncio.Event()
...     async def send(request: str) -> str:
...         await answer.wait()
...         return "answered"
...     group = Group()
...     group._send_req = send
...     watch_coordinator(group, clock=lambda: now[0])
...     beat = asyncio.ensure_future(group._send_req("heartbeat"))
...     await asyncio.sleep(0)
...     now[0] = 111.0
...     said = [kafka_readiness(False, True, group, 10.0, lambda: now[0])]
...     answer.set()
...     await beat
...     return said + [kafka_readiness(False, True, group, 10.0, lambda: now[0])]
>>> asyncio.run(frozen_broker())
['down: the group coordinator does not answer', 'ok']

A join waits for the whole group, however long: not a silence.

>>> class JoinGroupRequest:
...     pass
>>> async def slow_join() -> str:
...     now = [100.0]
...     async def send(request: object) -> str:
...         await asyncio.sleep(0.01)
...         return "joined"
...     group = Group()
...     group._send_req = send
...     watch_coordinator(group, clock=lambda: now[0])
...     joining = asyncio.ensure_future(group._send_req(JoinGroupRequest()))
...     await asyncio.sleep(0)
...     now[0] = 111.0
...     said = kafka_readiness(False, True, group, 10.0, lambda: now[0])
...     await joining
...     return said
>>> asyncio.run(slow_join())
'ok'
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

OK = "ok"
COORDINATOR_AWAY = "down: the group coordinator does not answer"
WAITING = "_moments_requests_waiting"  # set on the coordinator by watch_coordinator
# requests a coordinator holds until the group has met (JoinGroupRequest_v2, ...): a
# rebalance, not a silence, even after Faust's own one has ended and another begins
JOINING = ("JoinGroupRequest", "SyncGroupRequest")


def kafka_readiness(
    rebalancing: bool,
    assigned: bool,
    coordinator: Any,
    silent_for_s: float = 10.0,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """``ok``, or what keeps the worker from its partitions. ``coordinator``: the
    consumer's group coordinator (``None`` when the consumer has none to show); away
    when unknown, or, watched (:func:`watch_coordinator`), when a request to it has
    waited ``silent_for_s`` for its answer."""
    if rebalancing:  # (a join waits for the other members: not a silence)
        return "rebalancing"
    if not assigned:
        return "no partitions assigned yet"
    if coordinator is not None and not coordinator_answers(coordinator, silent_for_s, clock):
        return COORDINATOR_AWAY
    return OK


def coordinator_answers(
    coordinator: Any, silent_for_s: float = 10.0, clock: Callable[[], float] = time.monotonic
) -> bool:
    """Whether the group coordinator is known and no request to it (watched:
    :func:`watch_coordinator`) has waited ``silent_for_s`` for its answer: whether the
    worker reaches Kafka, whatever it holds (``moments_dependency_up``: a worker given
    no partition, or rebalancing, still heartbeats its coordinator)."""
    if coordinator.coordinator_id is None:
        return False
    # (filled in the consumer's own thread: read in one go, which the GIL keeps whole)
    oldest = min(getattr(coordinator, WAITING, {}).values(), default=None)
    return oldest is None or clock() - oldest <= silent_for_s


def watch_coordinator(coordinator: Any, clock: Callable[[], float] = time.monotonic) -> None:
    """Note on ``coordinator`` (aiokafka's group coordinator) since when each request
    to it (heartbeats, commits; not joins) waits for its answer, from now on (once: a
    watched one is left as it is). One of another aiokafka, without the call this
    wraps, is left unwatched."""
    send = getattr(coordinator, "_send_req", None)
    if coordinator is None or send is None or hasattr(coordinator, WAITING):
        return
    waiting: dict[int, float] = {}

    async def sent(request: Any) -> Any:
        if type(request).__name__.startswith(JOINING):  # waits for the other members
            return await send(request)
        mark = object()
        waiting[id(mark)] = clock()
        try:
            return await send(request)
        finally:
            del waiting[id(mark)]

    setattr(coordinator, WAITING, waiting)
    coordinator._send_req = sent


def group_coordinator(app: Any) -> Any:
    """The group coordinator of a Faust app's Kafka consumer, ``None`` when the consumer
    has not been made (or a Faust version keeps it elsewhere: the readiness then rests
    on the assignment alone)."""
    thread = getattr(app.consumer, "_thread", None)
    consumer = getattr(thread, "_consumer", None)
    return getattr(consumer, "_coordinator", None)
