"""Batches of a real Faust stream (over an in-memory channel, no broker): full or
``within`` after their first event, never larger than asked, acked once done with, and
no timer while nothing comes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from types import SimpleNamespace
from typing import Any

import faust
import pytest

from agents.touchpoint_batches import _Buffer, take_batches
from tests.unit.test_learner_figures import eventually


class Rig:
    """A Faust channel, its stream, and what was taken and acked."""

    def __init__(self) -> None:
        self.app = faust.App("batches-test", broker="kafka://127.0.0.1:1", autodiscover=False)
        self.app.flow_control.resume()
        self.channel = self.app.channel()
        self.stream = self.channel.stream()
        self.acked: list[int] = []
        self.waits = 0
        ack, wait = self.stream.ack, self.stream.wait

        async def counted_ack(event: Any) -> bool:
            self.acked.append(event.value)
            return bool(await ack(event))

        async def counted_wait(*args: Any, **kwargs: Any) -> Any:
            self.waits += 1
            return await wait(*args, **kwargs)

        self.stream.ack = counted_ack
        self.stream.wait = counted_wait

    async def send(self, *values: int) -> None:
        for value in values:
            await self.channel.send(value=value)


def values(batch: list[Any]) -> list[int]:
    return [event.value for event in batch]


async def collect(
    batches: AsyncIterator[list[Any]], into: list[list[int]], acked_then: list[list[int]], rig: Rig
) -> None:
    async for batch in batches:
        into.append(values(batch))
        acked_then.append(list(rig.acked))


async def test_a_lone_event_is_handed_out_within_after_it_came_and_acked_after() -> None:
    rig = Rig()
    taken: list[list[int]] = []
    acked_then: list[list[int]] = []
    batches = take_batches(rig.stream, 10, within=0.05)
    task = asyncio.ensure_future(collect(batches, taken, acked_then, rig))
    await asyncio.sleep(0.2)  # nothing comes: nothing is handed out
    assert taken == []
    sent = time.monotonic()
    await rig.send(1)
    await eventually(lambda: rig.acked == [1])
    waited = time.monotonic() - sent
    assert taken == [[1]] and acked_then == [[]]  # acked only once its batch was done
    assert 0.045 <= waited < 1.0  # it waited for company, from when it came
    task.cancel()


async def test_a_full_batch_is_handed_out_at_once_and_none_is_larger_than_asked() -> None:
    rig = Rig()
    taken: list[list[int]] = []
    batches = take_batches(rig.stream, 3, within=30.0)  # only a full batch comes out
    task = asyncio.ensure_future(collect(batches, taken, [], rig))
    await rig.send(*range(7))
    await eventually(lambda: len(taken) == 2)
    assert taken == [[0, 1, 2], [3, 4, 5]]
    await asyncio.sleep(0.05)
    assert len(taken) == 2  # the seventh waits for company
    task.cancel()


async def test_events_that_come_while_a_batch_is_handed_out_go_to_the_next() -> None:
    rig = Rig()
    seen: list[list[int]] = []
    async with aclosing(take_batches(rig.stream, 10, within=0.01)) as batches:
        await rig.send(1, 2)
        async for batch in batches:
            seen.append(values(batch))
            if len(seen) == 1:
                await rig.send(3, 4)
                await asyncio.sleep(0.05)  # the stream has them, the batch does not
                assert values(batch) == [1, 2]
            else:
                break
    assert seen == [[1, 2], [3, 4]]
    assert rig.acked == [1, 2, 3, 4]


async def test_a_batch_whose_caller_raised_or_closed_is_acked_and_the_stream_restored() -> None:
    rig = Rig()
    processors = list(rig.stream._processors)
    with pytest.raises(LookupError):
        async with aclosing(take_batches(rig.stream, 10, within=0.01)) as batches:
            await rig.send(1, 2)
            async for _batch in batches:
                assert rig.stream.enable_acks is False
                raise LookupError("the caller failed")
    assert rig.acked == [1, 2]  # Faust's take_events acks a batch whatever became of it
    assert rig.stream.enable_acks is True
    assert rig.stream._processors == processors


async def test_no_timer_runs_while_nothing_comes() -> None:
    """Faust's take_events waits ``within`` over and over while idle: about 50 waits in
    0.5 s here. This waits once, for the first event."""
    rig = Rig()
    task = asyncio.ensure_future(collect(take_batches(rig.stream, 10, 0.01), [], [], rig))
    await asyncio.sleep(0.5)
    assert rig.waits <= 2
    await rig.send(1)
    await eventually(lambda: rig.acked == [1])
    idle_from = rig.waits
    await asyncio.sleep(0.5)
    assert rig.waits - idle_from <= 1
    task.cancel()


@pytest.mark.parametrize(("max_", "within"), [(0, 0.01), (10, 0.0), (10, -1.0)])
async def test_a_batch_asked_for_with_no_room_or_no_wait_is_refused(
    max_: int, within: float
) -> None:
    rig = Rig()
    with pytest.raises(ValueError, match="a batch needs"):
        await anext(take_batches(rig.stream, max_, within))


async def test_a_fault_batching_an_event_crashes_the_stream() -> None:
    """As Faust's take_events does: logged, and the stream crashed (below)."""
    crashed: list[BaseException] = []

    async def crash(exc: BaseException) -> None:
        crashed.append(exc)

    stream = SimpleNamespace(current_event=None, crash=crash)  # no event under way
    assert await _Buffer(stream, 10).add("value") == "value"
    assert [str(exc) for exc in crashed] == ["a batch found no current event on its stream"]


async def test_a_crashed_stream_ends_its_batches() -> None:
    rig = Rig()
    task = asyncio.ensure_future(collect(take_batches(rig.stream, 10, 0.01), [], [], rig))
    await asyncio.sleep(0.05)
    await rig.stream.crash(RuntimeError("the stream's processor failed"))
    await asyncio.wait_for(task, 5)  # the agent is not left waiting for events
