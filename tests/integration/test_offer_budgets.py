"""Daily offer budgets on real Kafka and Redis: the counts in the store, and one budget
spent by a worker and the API together."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from feature_store import BudgetSpend
from feature_store.budgets import counted_tag
from tests.integration.conftest import SECRET, Pipeline, Worker
from tests.integration.test_api_support import DEV_AUTH, call, event, eventually, read_to_end
from tests.integration.test_touchpoints_pipeline import produce

pytestmark = pytest.mark.integration

CATALOGUE = """
version = "budget-1"
default_offers = ["newsletter"]

[[offers]]
offer_id = "voucher"
title = "EUR 20 voucher"
channels = ["web"]
value = 20.0
priority = 5.0
daily_limit = 3

[[offers]]
offer_id = "newsletter"
title = "Weekly picks"
channels = ["web"]
"""


async def test_the_store_counts_offers_by_day_and_keeps_them_three_days(
    pipeline: Pipeline,
) -> None:
    store = pipeline.store()
    try:
        day, next_day = date(2026, 12, 1), date(2026, 12, 2)
        assert await store.budgets.spent(day) == {}
        first = [
            BudgetSpend(day, "d1", ("voucher", "sale")),
            BudgetSpend(day, "d2", ("voucher",)),
            BudgetSpend(next_day, "d3", ("voucher",)),
        ]
        assert await store.budgets.add(first) == 3
        # a retried write or a replayed topic: the decisions counted already add nothing
        assert await store.budgets.add([first[1], BudgetSpend(day, "d4", ("voucher",))]) == 1
        assert await store.budgets.add(first) == 0
        assert await store.budgets.spent(day) == {"voucher": 3, "sale": 1}
        assert await store.budgets.spent(next_day) == {"voucher": 1}
        ttls = [ttl async for ttl in _budget_ttls(pipeline)]  # counts and decisions counted
        assert len(ttls) == 4 and all(2 * 86400 < t <= 3 * 86400 for t in ttls)
    finally:
        await store.close()


async def test_the_store_takes_back_the_spending_of_decisions_not_made(
    pipeline: Pipeline,
) -> None:
    """A decision the store refused to record (its customer erased meanwhile) gives its
    offers back to the budgets, once; one never counted takes nothing back."""
    store = pipeline.store()
    try:
        day = date(2026, 12, 1)
        made = BudgetSpend(day, "d1", ("voucher",))
        refused = BudgetSpend(day, "d2", ("voucher", "sale"))
        assert await store.budgets.add([made, refused]) == 2
        never_counted = BudgetSpend(day, "d3", ("voucher",))
        assert await store.budgets.take_back([refused, never_counted], for_good=True) == 1
        assert await store.budgets.spent(day) == {"voucher": 1}  # "sale" at 0 is gone
        assert await store.budgets.take_back([refused], for_good=True) == 0  # taken back once
        assert await store.budgets.spent(day) == {"voucher": 1}
        # a write of its spending retried after the take-back counts nothing, nor does
        # one that comes after a take-back that found nothing to take
        assert await store.budgets.add([refused, never_counted]) == 0
        assert await store.budgets.spent(day) == {"voucher": 1}
        ttls = [ttl async for ttl in _budget_ttls(pipeline)]  # the marks expire too
        assert len(ttls) == 2 and all(0 < ttl <= 3 * 86400 for ttl in ttls), ttls
    finally:
        await store.close()


async def test_the_store_counts_within_the_limits_where_it_counts(pipeline: Pipeline) -> None:
    """Decisions taken in order, first come first served: one that would take a budget
    past its limit is refused whole; one counted already stands; one taken back is
    refused; the same decision showing other offers counts again."""
    store = pipeline.store()
    try:
        day = date(2026, 12, 1)
        limits = {"voucher": 2, "sale": 5}
        first = [BudgetSpend(day, f"d{i}", ("voucher", "sale")) for i in range(3)]
        assert await store.budgets.take(first, limits) == {"d2"}  # the third is over
        assert await store.budgets.spent(day) == {"voucher": 2, "sale": 2}  # none of it
        again = [first[0], BudgetSpend(day, "d3", ("sale",)), BudgetSpend(day, "d4", ("bag",))]
        assert await store.budgets.take(again, limits) == set()  # d0 counted already
        assert await store.budgets.spent(day) == {"voucher": 2, "sale": 3, "bag": 1}
        assert await store.budgets.take_back([first[1]], for_good=True) == 1  # not made after all
        assert await store.budgets.take([first[1]], limits) == {"d1"}  # taken back: refused
        assert await store.budgets.take([BudgetSpend(day, "d1", ("sale",))], limits) == set()
        assert await store.budgets.spent(day) == {"voucher": 1, "sale": 3, "bag": 1}
        # the next day has budgets of its own; a limit of 0 shows the offer to no one
        other = [BudgetSpend(date(2026, 12, 2), "d5", ("voucher",)),
                 BudgetSpend(date(2026, 12, 2), "d6", ("hat",))]  # fmt: skip
        assert await store.budgets.take(other, {"voucher": 1, "hat": 0}) == {"d6"}
    finally:
        await store.close()


@pytest.mark.parametrize("corrupt", ["1.0", "007", "-0", "99999999999999999999"])
@pytest.mark.parametrize("how", ["take", "add", "take_back"])
async def test_a_count_that_is_no_integer_fails_the_take_before_it_writes(
    pipeline: Pipeline, corrupt: str, how: str
) -> None:
    """Redis keeps what a script wrote before it failed: a corrupt count is found first,
    so no decision is marked counted without its units (take let "007" through, which
    HINCRBY refuses; add and take_back checked nothing)."""
    import redis.asyncio as aioredis
    from redis.exceptions import ResponseError

    store = pipeline.store()
    client = aioredis.Redis.from_url(pipeline.services.redis_url, decode_responses=True)
    try:
        day = date(2026, 12, 1)
        assert await store.budgets.take([BudgetSpend(day, "d0", ("sale",))], {}) == set()
        mine = pipeline.prefix.rstrip("-")
        (counts,) = [k async for k in client.scan_iter(match=f"{mine}:budget:*")]
        await client.hset(counts, "voucher", corrupt)
        spends = [BudgetSpend(day, "d1", ("sale",)), BudgetSpend(day, "d2", ("voucher",))]
        if how == "take_back":  # what is taken back: d0, and d2 over the corrupt count
            spends = [BudgetSpend(day, "d0", ("sale",)), BudgetSpend(day, "d2", ("voucher",))]
        with pytest.raises(ResponseError, match="does not hold an integer"):
            if how == "take":
                await store.budgets.take(spends, {"voucher": 5})
            elif how == "add":
                await store.budgets.add(spends)
            else:
                await store.budgets.take_back(spends, for_good=True)
        assert await client.hget(counts, "sale") == "1"  # d1 was not counted either
        (counted,) = [k async for k in client.scan_iter(match=f"{mine}:budget-counted:*")]
        members = await client.smembers(counted)  # nothing marked, nothing removed
        assert members == {counted_tag(BudgetSpend(day, "d0", ("sale",)), SECRET.encode())}
    finally:
        await client.aclose()
        await store.close()


async def _budget_ttls(pipeline: Pipeline) -> Any:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(pipeline.services.redis_url, decode_responses=True)
    try:
        async for key in client.scan_iter(match=f"{pipeline.prefix.rstrip('-')}:budget*"):
            yield await client.ttl(key)
    finally:
        await client.aclose()


async def recommended(api: Worker, customer_id: str) -> dict[str, Any]:
    reply = await call(
        "GET",
        f"{api.url}/v1/customers/{customer_id}/recommendations?channel=web&limit=2",
        headers=DEV_AUTH,
    )
    assert reply.status == 200 and reply.json["fallback"] is False, reply
    answer: dict[str, Any] = reply.json
    return answer


def offer_ids(decision: dict[str, Any]) -> list[str]:
    return [o["offer_id"] for o in decision["offers"]]


async def test_a_worker_and_the_api_spend_one_daily_budget(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    path = tmp_path / "offers.toml"
    path.write_text(CATALOGUE)
    settings = {
        "MOMENTS_CATALOGUE_PATH": str(path),
        "MOMENTS_POLICY": "rules",
        "MOMENTS_CONTROL_PERCENT": "0",
        "MOMENTS_API_BUDGET_MS": "5000",
    }
    worker = pipeline.start_worker(**settings)
    api = pipeline.start_api(**settings)
    bootstrap = pipeline.services.kafka_bootstrap
    store = pipeline.store()
    today = datetime.now(UTC).date()

    async def worker_decisions(*event_ids: str) -> dict[str, dict[str, Any]] | None:
        found = {}
        for record in await read_to_end(bootstrap, pipeline.topic("next-best-offers")):
            decision = json.loads(record.value)
            if decision["trigger_event_id"] in event_ids:
                found[decision["trigger_event_id"]] = decision
        return found if len(found) == len(event_ids) else None

    async def spent(count: int) -> bool:
        return await store.budgets.spent(today) == {"voucher": count}

    try:
        # the worker shows the voucher twice...
        clicks = [event("web_click", f"bw-{i}", f"budget-click-{i}", minutes_ago=0) for i in (1, 2)]
        records = [(c["customer_id"].encode(), json.dumps(c).encode()) for c in clicks]
        await produce(bootstrap, pipeline.topic("touchpoints"), records)
        by_worker = await eventually(
            lambda: worker_decisions("budget-click-1", "budget-click-2"), "the worker's decisions"
        )
        assert all(offer_ids(d)[0] == "voucher" for d in by_worker.values())
        await eventually(lambda: spent(2), "the worker's spending counted")

        # an erased customer is offered what anyone would be but for the offers with a
        # daily budget (counted nowhere, each such answer would show the last one again)
        erased = await call("DELETE", f"{api.url}/v1/customers/ba-gone", headers=DEV_AUTH)
        assert erased.status == 200, erased
        assert offer_ids(await recommended(api, "ba-gone")) == ["newsletter"]
        assert await store.budgets.spent(today) == {"voucher": 2}

        # ...so the API may show it once more, then no more
        answers = [await recommended(api, f"ba-{i}") for i in range(1, 4)]
        assert [offer_ids(a) for a in answers] == [
            ["voucher", "newsletter"],
            ["newsletter"],
            ["newsletter"],
        ]
        assert all("suppressed:budget:voucher" in a["reasons"] for a in answers[1:])
        assert offer_ids(await recommended(api, "ba-gone")) == ["newsletter"]  # none left
        await eventually(lambda: spent(3), "the API's spending counted")
        assert api.metric("moments_offer_budget_spent", offer="voucher") == 3.0
        assert api.metric("moments_offer_budget_limit", offer="voucher") == 3.0
        listed = await call("GET", f"{api.url}/v1/offers?channel=web", headers=DEV_AUTH)
        assert listed.status == 200, listed
        assert listed.json["budgets_read"] is True
        by_id = {o["offer_id"]: o for o in listed.json["offers"]}
        assert by_id["voucher"]["shown_today"] == 3 and by_id["voucher"]["daily_limit"] == 3
        assert "shown_today" not in by_id["newsletter"]  # no budget

        # and the worker sees the budget spent by the API
        late = event("web_click", "bw-3", "budget-click-3", minutes_ago=0)
        await produce(bootstrap, pipeline.topic("touchpoints"),
                      [(b"bw-3", json.dumps(late).encode())])  # fmt: skip
        decided = await eventually(lambda: worker_decisions("budget-click-3"), "the last decision")
        assert offer_ids(decided["budget-click-3"]) == ["newsletter"]
        assert "suppressed:budget:voucher" in decided["budget-click-3"]["reasons"]
        assert await store.budgets.spent(today) == {"voucher": 3}

        async def worker_gauge() -> bool:  # set once its batch is confirmed, a round trip
            # after its decisions went out
            return worker.metric("moments_offer_budget_spent", offer="voucher") == 3.0

        await eventually(worker_gauge, "the worker's budget gauge")
    finally:
        await store.close()


def _zone_on_another_day(now: datetime) -> str:
    """A timezone whose date is not UTC's at ``now``: +14 h from 10:00 UTC, -11 h before."""
    return "Pacific/Kiritimati" if now.hour >= 10 else "Pacific/Pago_Pago"


async def test_the_budgets_count_the_days_of_the_catalogues_timezone(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """A business far from UTC has its budgets restart at its own midnight: the API and a
    worker count what they show on the catalogue's day, which the offers listing and the
    gauge show, and nothing on the UTC day."""
    zone = _zone_on_another_day(datetime.now(UTC))
    path = tmp_path / "offers.toml"
    path.write_text(CATALOGUE + f'\n[contact_policy]\ntimezone = "{zone}"\n')
    settings = {
        "MOMENTS_CATALOGUE_PATH": str(path),
        "MOMENTS_POLICY": "rules",
        "MOMENTS_CONTROL_PERCENT": "0",
        "MOMENTS_API_BUDGET_MS": "5000",
    }
    pipeline.start_worker(**settings)
    api = pipeline.start_api(**settings)
    bootstrap = pipeline.services.kafka_bootstrap
    store = pipeline.store()
    try:
        shown = await recommended(api, "bz-1")
        assert offer_ids(shown) == ["voucher", "newsletter"]
        at = datetime.fromisoformat(shown["ts"])
        local, utc = at.astimezone(ZoneInfo(zone)).date(), at.astimezone(UTC).date()

        async def spent(count: int) -> bool:
            return await store.budgets.spent(local) == {"voucher": count}

        await eventually(lambda: spent(1), "the API's spending counted on the local day")
        listed = await call("GET", f"{api.url}/v1/offers?channel=web", headers=DEV_AUTH)
        by_id = {o["offer_id"]: o for o in listed.json["offers"]}
        assert by_id["voucher"]["shown_today"] == 1
        assert api.metric("moments_offer_budget_spent", offer="voucher") == 1.0

        click = event("web_click", "bz-2", "budget-zone-click", minutes_ago=0)
        await produce(bootstrap, pipeline.topic("touchpoints"),
                      [(b"bz-2", json.dumps(click).encode())])  # fmt: skip
        await eventually(lambda: spent(2), "the worker's spending counted on the local day")
        if local != utc:  # (unless the test ran across UTC midnight)
            assert await store.budgets.spent(utc) == {}
    finally:
        await store.close()
