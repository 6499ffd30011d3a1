"""Items of ``POST /v1/events`` and ``/v1/outcomes`` about erased customers are left out
before anything is written (streams/api/erased_items.py); the routes on real Redis and
Kafka are in ``tests/integration/test_api_ingest_erased.py``."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from feature_store.records import StoreUnavailable
from streams.api.erased_items import screen

ITEMS = [("c1", "e1"), ("gone", "e2"), ("c2", "e3"), ("gone", "e4"), ("c1", "e5")]


def customer(item: tuple[str, str]) -> str:
    return item[0]


async def test_erased_customers_items_are_left_out_each_customer_asked_once() -> None:
    asked: list[list[str]] = []

    async def erased(customers: Sequence[str]) -> list[bool]:
        asked.append(list(customers))
        return [c == "gone" for c in customers]

    screened = await screen(ITEMS, customer, erased, lately=set())
    assert asked == [["c1", "gone", "c2"]]  # one round trip, each customer once
    assert screened.kept == [("c1", "e1"), ("c2", "e3"), ("c1", "e5")]
    assert screened.places == [0, 2, 4]  # where each was sent, for an error naming it
    assert screened.erased == [("gone", "e2"), ("gone", "e4")]
    assert screened.unchecked == 0


async def test_the_erasures_remembered_lately_are_left_out_too() -> None:
    async def nobody(customers: Sequence[str]) -> list[bool]:
        return [False] * len(customers)

    screened = await screen(ITEMS, customer, nobody, lately={"c2"})
    assert [c for c, _ in screened.erased] == ["c2"] and screened.unchecked == 0


async def test_while_redis_cannot_say_the_items_go_as_sent_but_those_remembered() -> None:
    async def away(customers: Sequence[str]) -> list[bool]:
        raise StoreUnavailable("connection refused")

    async def frozen(customers: Sequence[str]) -> list[bool]:
        await asyncio.sleep(60)
        raise AssertionError("waited out")

    for erased in (away, frozen, None):  # None: known to be away, not asked
        loop = asyncio.get_running_loop()
        started = loop.time()
        screened = await screen(ITEMS, customer, erased, lately={"gone"}, within_s=0.05)
        assert loop.time() - started < 1.0  # the ingest is not held up
        assert [item for _, item in screened.kept] == ["e1", "e3", "e5"]
        assert len(screened.erased) == 2 and screened.unchecked == 3


def test_a_check_that_failed_is_not_taken_for_one_answered_when_nothing_is_kept() -> None:
    """Every item of a customer this process saw erased: nothing is left to write, but
    Redis did not answer, and the pause on checks must not end on it."""

    async def away(customers: Any) -> list[bool]:
        raise TimeoutError

    found = asyncio.run(screen([("gone", "a")], lambda item: item[0], away, lately={"gone"}))
    assert found.kept == [] and found.unchecked == 0 and not found.checked
