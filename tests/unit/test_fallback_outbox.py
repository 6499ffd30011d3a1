"""Fallback decisions are published once Redis says their customers are not erased: they
wait while it cannot say, and are given up (counted) after a while, or when too many
wait, or at shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import pytest

from feature_store import StoreUnavailable
from streams.api.fallback_outbox import CHECK_AT_ONCE, FallbackOutbox, Record
from tests.unit.logged import said_by


class Tombstones:
    def __init__(self, erased: set[str], down: bool = False) -> None:
        self.erased, self.down, self.asked = erased, down, 0

    async def __call__(self, waiting: Sequence[tuple[str, bytes]]) -> list[bool]:
        self.asked += 1
        if self.down:
            raise StoreUnavailable("connection refused")
        return [c in self.erased for c, _ in waiting]


def outbox(redis: Tombstones, **options: float) -> tuple[FallbackOutbox, list[Record], list[int]]:
    sent: list[Record] = []
    dropped: list[int] = []
    box = FallbackOutbox(redis, sent.extend, dropped.append, retry_s=0.01, **options)  # type: ignore[arg-type]
    return box, sent, dropped


async def test_only_the_decisions_of_customers_not_erased_are_published() -> None:
    box, sent, dropped = outbox(Tombstones({"gone"}))
    for customer in ("here", "gone", "also-here"):
        box.add(customer, customer.encode() + b"-decision")
    await box.drain()
    assert sent == [(b"here", b"here-decision"), (b"also-here", b"also-here-decision")]
    assert dropped == [] and len(box) == 0


def held_up_outbox(
    limit: int,
) -> tuple[FallbackOutbox, list[Record], list[int], asyncio.Event]:
    """An outbox whose Redis answers its checks once ``answered`` is set."""
    answered = asyncio.Event()

    async def slow_redis(waiting: Sequence[tuple[str, bytes]]) -> list[bool]:
        await answered.wait()
        return [False] * len(waiting)

    sent: list[Record] = []
    dropped: list[int] = []
    box = FallbackOutbox(slow_redis, sent.extend, dropped.append, limit=limit, retry_s=0.01)
    return box, sent, dropped, answered


async def soon(condition: Callable[[], bool], within_s: float = 5.0) -> None:
    """Wait until ``condition`` holds (polling), failing after ``within_s``."""
    for _ in range(int(within_s / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("it did not happen in time")


async def test_decisions_wait_while_redis_cannot_say_then_go() -> None:
    redis = Tombstones({"gone"}, down=True)
    box, sent, dropped = outbox(redis)
    box.add("here", b"d1")
    box.add("gone", b"d2")
    await soon(lambda: redis.asked >= 3)  # asked again, and again (0.01, 0.02, 0.04 s...)
    assert sent == [] and len(box) == 2
    redis.down = False
    await box.drain()
    assert sent == [(b"here", b"d1")] and dropped == []


async def test_decisions_held_too_long_are_given_up_and_counted() -> None:
    redis = Tombstones(set(), down=True)
    box, sent, dropped = outbox(redis, hold_s=0.05)
    box.add("here", b"d1")
    await soon(lambda: dropped == [1])
    assert len(box) == 0 and sent == []
    box.add("later", b"d2")  # a new one is checked again, as usual
    redis.down = False
    await box.drain()
    assert sent == [(b"later", b"d2")]


async def test_past_the_limit_the_oldest_is_given_up() -> None:
    redis = Tombstones(set(), down=True)
    box, sent, dropped = outbox(redis, limit=2)
    for n in range(3):
        box.add(f"c{n}", b"d%d" % n)
    assert len(box) == 2 and dropped == [1]
    redis.down = False
    await box.drain()
    assert sent == [(b"c1", b"d1"), (b"c2", b"d2")]


async def test_at_shutdown_what_cannot_be_checked_in_time_is_given_up() -> None:
    box, sent, dropped = outbox(Tombstones(set(), down=True))
    box.add("here", b"d1")
    await box.drain(within_s=0.05)
    assert sent == [] and dropped == [1] and len(box) == 0


async def test_one_being_checked_is_never_pushed_out_by_newer_ones() -> None:
    """The check records each decision it is asked about: one pushed out meanwhile (and
    counted as given up) was recorded, and never published. Those being checked are out
    of the queue; newer ones push out the oldest still waiting."""
    box, sent, dropped, answered = held_up_outbox(limit=2)
    box.add("c0", b"d0")
    box.add("c1", b"d1")
    await asyncio.sleep(0.01)  # Redis is being asked about c0 and c1
    for n in range(2, 5):
        box.add(f"c{n}", f"d{n}".encode())  # c2 is pushed out: given up, and counted
    assert dropped == [1]
    answered.set()
    await box.drain()
    assert sent == [(b"c0", b"d0"), (b"c1", b"d1"), (b"c3", b"d3"), (b"c4", b"d4")]


async def test_the_checks_keep_up_with_fallbacks_into_an_api_short_of_cpu() -> None:
    """Each round trip slowed to 250 ms by a busy event loop, and fallbacks coming at 5,000
    a second: checked 500 at a time, half of them were pushed out, many once recorded."""

    async def busy_redis(waiting: Sequence[tuple[str, bytes]]) -> list[bool]:
        await asyncio.sleep(0.25)
        return [False] * len(waiting)

    sent: list[Record] = []
    dropped: list[int] = []
    box = FallbackOutbox(busy_redis, sent.extend, dropped.append)
    for tick in range(400):  # 4 s, 50 every 10 ms: past the 10,000 that may wait
        for n in range(50):
            box.add(f"c{tick}-{n}", b"d")
        await asyncio.sleep(0.01)
    await box.drain(within_s=None)
    assert dropped == [] and len(sent) == 20_000


async def test_decisions_given_up_in_a_flood_are_logged_counted_not_one_line_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With 10,000 fallbacks waiting, each new one pushed the oldest out and logged a line
    of its own: an 8 s Redis stall under load wrote 21,822 identical warnings."""
    box, _, dropped = outbox(Tombstones(set(), down=True), limit=2)
    with caplog.at_level(logging.WARNING, logger="streams.api.fallback_outbox"):
        for n in range(1_002):
            box.add(f"c{n}", b"d")
        assert sum(dropped) == 1_000  # every one given up is counted at once
        await box.drain(within_s=0.05)
    lines = [r.getMessage() for r in said_by(caplog, "streams.api.fallback_outbox")]
    assert len(lines) <= 3, lines  # the first, then the rest at the end
    said = sum(int(line.split()[0]) for line in lines)
    assert said == sum(dropped) == 1_002  # and the two still waiting at the stop


async def test_a_decision_answered_with_offers_is_never_pushed_out_by_fallbacks() -> None:
    """A decision answered with its offers whose write failed waits with the fallbacks;
    while Redis was away, fallbacks came by the thousand and pushed it out: shown to the
    customer, it was never published."""
    box, sent, dropped, answered = held_up_outbox(limit=2)
    box.add("shown", b"offers", shown=True)
    for n in range(5):
        box.add(f"c{n}", b"fallback")
    assert sum(dropped) == 3  # three fallbacks, for newer ones
    answered.set()
    await box.drain()
    assert (b"shown", b"offers") in sent and len(sent) == 3


async def test_thousands_waiting_are_checked_a_few_hundred_at_a_time() -> None:
    """Ten thousand decisions checked in one round trip held the event loop 0.3 s as Redis
    came back: the API answered nothing meanwhile."""
    sizes: list[int] = []

    async def redis(waiting: Sequence[tuple[str, bytes]]) -> list[bool]:
        sizes.append(len(waiting))
        return [False] * len(waiting)

    sent: list[Record] = []
    box = FallbackOutbox(redis, sent.extend, lambda n: None, retry_s=0.01)
    for n in range(1_200):
        box.add(f"c{n}", b"d", shown=n % 3 == 0)
    await box.drain()
    assert sorted(key for key, _ in sent) == sorted(f"c{n}".encode() for n in range(1_200))
    assert max(sizes) <= CHECK_AT_ONCE and sum(sizes) == 1_200


async def test_decisions_given_up_while_the_process_runs_leave_its_outbox() -> None:
    """Pushed out, or waiting too long for Redis: forgotten (out of the API's outbox, as
    the decisions Kafka took); those still waiting at a stop are not (they stay there,
    for another process to publish)."""
    redis = Tombstones(set(), down=True)
    forgotten: list[Record] = []
    box = FallbackOutbox(redis, [].extend, lambda n: None, hold_s=0.05, limit=2, retry_s=0.01,
                         forget=forgotten.extend)  # fmt: skip
    for customer in ("c1", "c2", "c3"):
        box.add(customer, b"d")
    assert forgotten == [(b"c1", b"d")]  # pushed out by newer ones
    await asyncio.sleep(0.2)
    assert sorted(forgotten) == [(b"c1", b"d"), (b"c2", b"d"), (b"c3", b"d")]  # expired
    stopping = FallbackOutbox(redis, [].extend, lambda n: None, retry_s=0.01,
                              forget=forgotten.extend)  # fmt: skip
    stopping.add("c4", b"d")
    await stopping.drain(within_s=0.05)
    assert (b"c4", b"d") not in forgotten


async def test_the_customers_a_check_finds_erased_are_told() -> None:
    """What else the process holds about them (the fallbacks' contacts) forgets them: it
    may not have known they were erased (long ago, or past what it remembers)."""
    found: list[str] = []
    sent: list[Record] = []
    box = FallbackOutbox(Tombstones({"gone"}), sent.extend, print, found_erased=found.append)
    for customer in ("here", "gone", "gone"):
        box.add(customer, customer.encode() + b"-decision")
    await box.drain()
    assert found == ["gone", "gone"] and sent == [(b"here", b"here-decision")]


class Reads:
    """Test double for the store's read of who is erased; raises while ``down``."""

    def __init__(self, erased: set[str], down: bool = True) -> None:
        self.erased, self.down, self.asked = erased, down, list[str]()

    async def __call__(self, customer_ids: Sequence[str]) -> list[bool]:
        if self.down:
            raise StoreUnavailable("connection refused")
        self.asked.extend(customer_ids)
        return [c in self.erased for c in customer_ids]


async def eventually(condition: Callable[[], object], within_s: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    until = loop.time() + within_s
    while not condition():
        assert loop.time() < until, "it never happened"
        await asyncio.sleep(0.01)


async def test_a_customer_given_up_unchecked_is_forgotten_once_redis_says_they_are_erased() -> None:
    """Their fallback's decision waited longer than its hold while Redis was away: kept
    (for the next fallbacks' caps) only until Redis answers whether they are erased; the
    erased one is then forgotten, the other is not, and neither is kept to ask of."""
    found: list[str] = []
    reads = Reads({"gone"})
    box = FallbackOutbox(Tombstones(set(), down=True), [].extend, lambda n: None, hold_s=0.05,
                         retry_s=0.01, found_erased=found.append, who_erased=reads)  # fmt: skip
    for customer in ("here", "gone"):
        box.add(customer, b"d")
    await eventually(lambda: len(box) == 0 and box.unchecked == 2)
    await asyncio.sleep(0.05)
    assert found == []  # Redis cannot say yet: kept
    reads.down = False
    await eventually(lambda: box.unchecked == 0)
    assert found == ["gone"] and sorted(reads.asked) == ["gone", "here"]
    assert await box.drain() is True


async def test_a_customer_given_up_unchecked_with_no_way_to_ask_is_forgotten_at_once() -> None:
    """Pushed out by newer fallbacks, or out of those kept to ask of, or with no way to
    ask whether they are erased: forgotten unasked (they may be erased)."""
    found: list[str] = []
    box = FallbackOutbox(Tombstones(set(), down=True), [].extend, lambda n: None, limit=1,
                         retry_s=0.01, found_erased=found.append)  # fmt: skip
    box.add("c1", b"d")
    box.add("c2", b"d")  # pushes c1's out
    assert found == ["c1"]
    assert await box.drain(within_s=0.05) is False
    found.clear()
    reads = Reads(set())
    asking = FallbackOutbox(Tombstones(set(), down=True), [].extend, lambda n: None, limit=1,
                            retry_s=0.01, found_erased=found.append, who_erased=reads,
                            unchecked_limit=2)  # fmt: skip
    for customer in ("c1", "c2", "c1", "c3"):  # each pushes the one before out
        asking.add(customer, b"d")
    assert found == [] and asking.unchecked == 2  # c1 once (the newest), c2
    asking.add("c4", b"d")  # pushes c3's out: c2, the oldest kept to ask of, goes unasked
    assert found == ["c2"] and asking.unchecked == 2


async def test_a_stop_does_not_wait_to_ask_of_the_customers_given_up() -> None:
    """Only customers given up unchecked are left, and Redis is away: the process stops
    at once (what it holds ends with it)."""
    box = FallbackOutbox(Tombstones(set(), down=True), [].extend, lambda n: None, hold_s=0.02,
                         retry_s=0.01, who_erased=Reads(set()))  # fmt: skip
    box.add("c1", b"d")
    await eventually(lambda: len(box) == 0 and box.unchecked == 1)
    started = asyncio.get_running_loop().time()
    assert await box.drain(within_s=5.0) is True
    assert asyncio.get_running_loop().time() - started < 0.5 and box.unchecked == 0


async def test_a_stop_with_no_limit_ends_once_what_waits_is_given_up() -> None:
    """Redis away through the stop: the decisions waiting are given up when their hold
    ends, and their customers are not kept to ask of (the process ends), so a drain
    with no time limit returns."""
    given_up: list[int] = []
    box = FallbackOutbox(Tombstones(set(), down=True), [].extend, given_up.append,
                         hold_s=0.2, retry_s=0.01, who_erased=Reads(set()))  # fmt: skip
    box.add("c1", b"d")
    await asyncio.wait_for(box.drain(within_s=None), 5.0)
    assert sum(given_up) == 1 and box.unchecked == 0
