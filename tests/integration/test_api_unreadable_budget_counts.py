"""The API reads the day's offer-budget counts as the worker does: one offer's count that
is no integer (``3.0``, as a tool or another version counting with floats writes it),
or the day's counts a key of another type, makes that offer read as spent to its limit
(not offered until mended or the day ends). Before, the read of every batch of
recommendations failed: each customer got the default offers all day, counted as
fallbacks (``error``), and ``GET /v1/offers`` answered 500. Real Redis and Kafka.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from agents.offer_budget import budget_day
from tests.integration.conftest import Pipeline
from tests.integration.test_api_support import DEV_AUTH, call
from tests.integration.test_offer_budgets import offer_ids, recommended

pytestmark = pytest.mark.integration

CATALOGUE = """
version = "unreadable-1"
default_offers = ["newsletter"]

[[offers]]
offer_id = "voucher"
title = "EUR 20 voucher"
channels = ["web"]
priority = 5.0
daily_limit = 100

[[offers]]
offer_id = "callback"
title = "Call-back"
channels = ["web"]
priority = 4.0
daily_limit = 100

[[offers]]
offer_id = "newsletter"
title = "Weekly picks"
channels = ["web"]
"""


@pytest.mark.parametrize("corrupt", ["count", "key"])
async def test_an_unreadable_budget_count_closes_its_offer_alone(
    pipeline: Pipeline, tmp_path: Path, corrupt: str
) -> None:
    path = tmp_path / "offers.toml"
    path.write_text(CATALOGUE)
    api = pipeline.start_api(
        MOMENTS_CATALOGUE_PATH=str(path),
        MOMENTS_POLICY="rules",
        MOMENTS_CONTROL_PERCENT="0",
        MOMENTS_API_BUDGET_MS="5000",
    )
    admin = aioredis.Redis.from_url(pipeline.services.redis_url)
    counts = f"{pipeline.prefix.rstrip('-')}:budget:{{{budget_day(datetime.now(UTC))}}}"
    try:
        if corrupt == "count":
            await admin.hset(counts, mapping={"voucher": "3.0", "callback": "2"})
        else:
            await admin.set(counts, "not a hash")
        customers = [f"ub-{corrupt}-{n}" for n in range(4)]
        # decisions, not fallbacks (recommended checks "fallback": false); the voucher,
        # whose count cannot be read, is not offered, the callback is where its count can
        # be read
        answers = [await recommended(api, c) for c in customers]
        made = ["callback", "newsletter"] if corrupt == "count" else ["newsletter"]
        assert [offer_ids(a) for a in answers] == [made] * len(customers)
        assert all("suppressed:budget:voucher" in a["reasons"] for a in answers)
        assert api.metric_sum("moments_recommendation_fallbacks_total") == 0
        if corrupt == "count":  # the callbacks shown are counted; the voucher left as found
            assert await admin.hgetall(counts) == {b"voucher": b"3.0", b"callback": b"6"}

        listed = await call("GET", f"{api.url}/v1/offers?channel=web", headers=DEV_AUTH)
        assert listed.status == 200, listed
        by_id = {o["offer_id"]: o for o in listed.json["offers"]}
        assert listed.json["budgets_read"] is False  # not all of them
        assert by_id["voucher"]["shown_today"] is None  # not known
        assert by_id["callback"]["shown_today"] == (6 if corrupt == "count" else None)
        assert "shown_today" not in by_id["newsletter"]

        # said in the log, once for the burst (not a line a request), naming no customer
        said = [line for line in api.log_path.read_text().splitlines()
                if "budget" in line and "cannot be read" in line]  # fmt: skip
        assert len(said) == 1, said
        assert not any(c in said[0] for c in customers)
    finally:
        await admin.aclose()
