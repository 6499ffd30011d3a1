"""Daily offer budgets hold across processes (real Redis and Kafka).

Processes deciding at once read the same budget counts: each would spend what it read
was left. The store counts each decision's spending within the limits where it keeps the
counts, and refuses a decision that would take a budget past its limit; the process
decides it again from the counts as they are now.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agents.catalogue_holder import CatalogueHolder
from agents.contact_policy import ContactPolicy
from agents.control_group import ControlGroup
from agents.offer_rules import RuleBasedOfferPolicy
from agents.touchpoint_handler import TouchpointHandler
from schemas import NextBestOffer, Offer, OfferCatalogue
from tests.integration.conftest import Pipeline
from tests.integration.test_api_support import DEV_AUTH, call
from tests.integration.test_contact_ceilings import TwoProcesses, clicks, two, unique

pytestmark = pytest.mark.integration
__all__ = ["two"]  # the fixture

VOUCHER = Offer(offer_id="voucher", title="Voucher", channels=["web"], value=20.0,
                priority=5.0, daily_limit=4)  # fmt: skip
TIPS = Offer(offer_id="tips", title="Tips", channels=["web"])
FOUR_VOUCHERS = OfferCatalogue(version="four-vouchers", offers=[VOUCHER, TIPS])


def vouchers(decisions: list[NextBestOffer]) -> int:
    return sum(1 for d in decisions if any(o.offer_id == "voucher" for o in d.offers))


async def test_forty_customers_over_two_processes_get_the_daily_budget_and_no_more(
    two: TwoProcesses,
) -> None:
    """Forty customers asked for at once, twenty to each process, with four vouchers a
    day: four are shown, whichever process showed them; the others are offered tips."""
    first, second = two.start(FOUR_VOUCHERS)
    customers = [unique(f"budget{i}") for i in range(40)]
    asked = [rec.recommend(c, "web", 2) for i, c in enumerate(customers)
             for rec in ((first, second)[i % 2],)]  # fmt: skip
    answers = await asyncio.gather(*asked)
    await asyncio.gather(first.drain(), second.drain())
    decisions = [a for a in answers if isinstance(a, NextBestOffer)]
    assert len(decisions) == 40 and all(d.offers for d in decisions)
    assert vouchers(decisions) == 4
    others = [d for d in decisions if d.offers[0].offer_id != "voucher"]
    assert all("suppressed:budget:voucher" in d.reasons for d in others)
    today = datetime.now(UTC).date()
    assert (await two.stores[0].budgets.spent(today)).get("voucher") == 4
    # the decisions answered are those published; refused ones are not
    assert sorted(await two.published(40)) == sorted(d.decision_id for d in decisions)


async def test_two_workers_deciding_at_once_keep_the_daily_budget(two: TwoProcesses) -> None:
    """Two workers decide on three customers' clicks each from the same counts, with four
    vouchers a day: four of the six decisions sent show it, and four are counted."""
    policy = RuleBasedOfferPolicy(
        CatalogueHolder(FOUR_VOUCHERS), ContactPolicy(ControlGroup("salt", 0.0))
    )
    first, second = (TouchpointHandler(store, policy) for store in two.stores)
    batches = [[r for i in range(3) for r in clicks(unique(f"w{w}c{i}"), f"w{w}c{i}", 1)]
               for w in range(2)]  # fmt: skip
    results = [await h.handle(b, Counter()) for h, b in zip((first, second), batches, strict=True)]
    assert [vouchers(r.decisions) for r in results] == [3, 3]  # both read four left
    refusals = [await h.reserve(r) for h, r in zip((first, second), results, strict=True)]
    assert [r.budgets for r in refusals] == [0, 2]
    assert [vouchers(r.decisions) for r in results] == [3, 1]
    for handler, result in zip((first, second), results, strict=True):
        await handler.confirm(result)  # after delivery: counted once
    today = datetime.now(UTC).date()
    assert (await two.stores[0].budgets.spent(today)).get("voucher") == 4


FOUR_A_DAY = """
version = "four-vouchers"
default_offers = ["tips"]

[[offers]]
offer_id = "voucher"
title = "EUR 20 voucher"
channels = ["web"]
value = 20.0
priority = 5.0
daily_limit = 4

[[offers]]
offer_id = "tips"
title = "Tips for your new purchase"
channels = ["web"]
"""


async def test_two_api_processes_asked_at_once_show_the_daily_budget(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """The drill, end to end: forty customers asked for at once, twenty to each of two
    `moments api` processes, with four vouchers a day."""
    path = tmp_path / "vouchers.toml"
    path.write_text(FOUR_A_DAY)
    settings = {"MOMENTS_CATALOGUE_PATH": str(path), "MOMENTS_CONTROL_PERCENT": "0",
                "MOMENTS_API_BUDGET_MS": "5000"}  # fmt: skip
    apis = [pipeline.start_api(**settings), pipeline.start_api(**settings)]
    urls = [f"{apis[i % 2].url}/v1/customers/{unique(f'drill{i}')}/recommendations?channel=web"
            for i in range(40)]  # fmt: skip
    replies = await asyncio.gather(*(call("GET", url, headers=DEV_AUTH) for url in urls))
    assert [r.status for r in replies] == [200] * 40
    answers = [r.json for r in replies]
    assert not any(a["fallback"] for a in answers)
    shown = sum(1 for a in answers if any(o["offer_id"] == "voucher" for o in a["offers"]))
    assert shown == 4
    refused = sum(api.metric("moments_budgets_refused_total") for api in apis)
    print(f"decisions refused over a budget and taken again: {refused:.0f}")
