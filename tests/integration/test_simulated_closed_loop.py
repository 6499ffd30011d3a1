"""``moments simulate --respond`` on a running worker: the simulated customers answer the
decisions the worker publishes, and some order after accepting or clicking."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from datetime import datetime
from typing import Any

import pytest

from schemas import load_catalogue
from streams.settings import Settings
from streams.simulation.producer import simulate, simulate_closed_loop
from tests.integration.conftest import Pipeline
from tests.integration.test_api_support import read_to_end

pytestmark = pytest.mark.integration


async def test_customers_answer_offers_and_order_after_accepting(pipeline: Pipeline) -> None:
    pipeline.start_worker()
    bootstrap = pipeline.services.kafka_bootstrap
    sent, answered = await simulate_closed_loop(
        bootstrap,
        pipeline.topic("touchpoints"),
        pipeline.topic("next-best-offers"),
        pipeline.topic("offer-outcomes"),
        load_catalogue(Settings().catalogue_path),
        customers=60,
        seed=5,
        rate=150.0,
        count=600,
        grace_s=8.0,
    )
    assert sent.sent == 600 and answered.decisions > 0 and answered.outcomes > 0

    def values(records: list[Any]) -> list[dict[str, Any]]:
        return [json.loads(r.value) for r in records]

    decisions = {
        d["decision_id"]: d
        for d in values(await read_to_end(bootstrap, pipeline.topic("next-best-offers")))
    }
    outcomes = values(await read_to_end(bootstrap, pipeline.topic("offer-outcomes")))
    touchpoints = values(await read_to_end(bootstrap, pipeline.topic("touchpoints")))
    assert len(outcomes) == answered.outcomes
    orders = [t for t in touchpoints if t["event_id"].startswith("sim-order-")]
    assert len(orders) == answered.orders > 0
    assert len(touchpoints) == 600 + len(orders)

    # every answer is to a decision that made an offer, never to the control group
    answers = Counter(o["outcome"] for o in outcomes)
    assert answers["shown"] == answered.answered
    final = {o["decision_id"]: o for o in outcomes if o["outcome"] != "shown"}
    for outcome in outcomes:
        decision = decisions[outcome["decision_id"]]
        assert not decision["control"] and decision["offers"]
        assert outcome["offer_id"] == decision["offers"][0]["offer_id"]
    # every order follows an acceptance or a click of the same customer, later
    for order in orders:
        decision_id = order["event_id"].removeprefix("sim-order-")
        answer = final[decision_id]
        assert answer["outcome"] in ("accepted", "clicked")
        assert order["type"] == "purchase" and order["customer_id"] == answer["customer_id"]
        assert datetime.fromisoformat(order["ts"]) > datetime.fromisoformat(answer["ts"])
        assert order["amount"] >= 1.0


async def test_a_second_run_is_new_traffic_and_no_limit_runs_until_cancelled(
    pipeline: Pipeline,
) -> None:
    """Runs with the same seed named their events alike, so a worker took a second run
    for a replay of the first and did nothing. With no count or duration, the simulator
    runs on until it is cancelled (it used to stop after an hour)."""
    topic = pipeline.topic("touchpoints")
    bootstrap = pipeline.services.kafka_bootstrap
    first = await simulate(bootstrap, topic, customers=20, seed=3, rate=500.0, count=5)
    second = await simulate(bootstrap, topic, customers=20, seed=3, rate=500.0, count=5)
    assert first.sent == second.sent == 5
    endless = asyncio.create_task(simulate(bootstrap, topic, customers=20, seed=3, rate=2000.0))
    await asyncio.sleep(4.0)
    assert not endless.done()
    endless.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await endless
    ids = [json.loads(r.value)["event_id"] for r in await read_to_end(bootstrap, topic)]
    assert len(ids[:10]) == len(set(ids[:10])) == 10, ids[:10]
    assert len(ids) > 1000
