"""``moments lift`` on a running deployment: decisions taken by a worker and by the API
for customers split between treated and control, purchases posted over HTTP, one
customer erased. The expected figures are counted here from the decisions the engine
published, independently of streams/control_lift.py."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.integration import forked_starts
from tests.integration.conftest import Pipeline
from tests.integration.test_api_support import DEV_AUTH, call, event, iso, read_to_end

pytestmark = pytest.mark.integration

WINDOW_S = 10
WORKER_CUSTOMERS = [f"lift-w{n}" for n in range(24)]
API_CUSTOMERS = [f"lift-a{n}" for n in range(12)]


async def _decisions(pipeline: Pipeline, expected: int) -> dict[str, list[dict[str, Any]]]:
    """The published decisions per customer, once ``expected`` customers have one."""
    for _ in range(120):
        by_customer: dict[str, list[dict[str, Any]]] = {}
        for record in await read_to_end(
            pipeline.services.kafka_bootstrap, pipeline.topic("next-best-offers")
        ):
            decision = json.loads(record.value)
            by_customer.setdefault(decision["customer_id"], []).append(decision)
        if len(by_customer) >= expected:
            return by_customer
        await asyncio.sleep(0.5)
    raise AssertionError(f"only {len(by_customer)} of {expected} customers were decided")


def run_lift(pipeline: Pipeline, since: datetime, *args: str) -> tuple[dict[str, Any], str]:
    """``moments lift`` from ``since`` up to now, as a deployment's operator runs it: the
    report, and all it printed."""
    command = [
        "lift", *args, "--since", since.isoformat(), "--until", datetime.now(UTC).isoformat(),
    ]  # fmt: skip
    env = {**pipeline.env(0), "MOMENTS_LOG_LEVEL": "info"}  # the default
    result = forked_starts.run(command, env, timeout=300, anew=True)  # as a new process
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report, result.stdout + result.stderr


def _purchase(customer_id: str, event_id: str, at: datetime, amount: float) -> dict[str, Any]:
    return event("purchase", customer_id, event_id, amount=amount, ts=iso(at))


async def test_lift_report_counts_what_the_engine_decided_and_customers_bought(
    pipeline: Pipeline,
) -> None:
    started = datetime.now(UTC)
    split = {"MOMENTS_CONTROL_PERCENT": "50"}
    pipeline.start_worker(**split)
    api = pipeline.start_api(**split)
    clicks = [event("web_click", c, f"{c}-click", minutes_ago=0) for c in WORKER_CUSTOMERS]
    posted = await call("POST", f"{api.url}/v1/events", headers=DEV_AUTH, body=clicks)
    assert posted.status == 202, posted
    for customer in API_CUSTOMERS:
        url = f"{api.url}/v1/customers/{customer}/recommendations?channel=email"
        assert (await call("GET", url, headers=DEV_AUTH)).status == 200
    customers = WORKER_CUSTOMERS + API_CUSTOMERS
    decided = await _decisions(pipeline, len(customers))

    # Each customer's exposure, as the report should find it.
    exposure = {}
    for customer in customers:
        first = min(decided[customer], key=lambda d: d["ts"])
        at = datetime.fromisoformat(first["ts"])
        exposure[customer] = (at, first["control"], first["channel"], first["segment"])
    groups = {c: e[1] for c, e in exposure.items()}
    assert 4 <= sum(groups.values()) <= len(customers) - 4, groups  # both groups present
    # the profile says who is held out, as the decisions did
    for customer in WORKER_CUSTOMERS[:8]:
        profile = await call("GET", f"{api.url}/v1/customers/{customer}", headers=DEV_AUTH)
        assert profile.status == 200 and profile.json["control_group"] is groups[customer]

    # Every second customer buys within the window (one order sent twice), every third
    # of the others only after it; one customer is erased.
    purchases, buyers = [], set()
    for n, customer in enumerate(customers):
        at = exposure[customer][0]
        if n % 2 == 0:
            purchases.append(_purchase(customer, f"{customer}-buy", at + timedelta(seconds=2), 30))
            buyers.add(customer)
        elif n % 3 == 0:
            late = at + timedelta(seconds=WINDOW_S + 60)
            purchases.append(_purchase(customer, f"{customer}-late", late, 500))
    purchases.append(purchases[0])
    posted = await call("POST", f"{api.url}/v1/events", headers=DEV_AUTH, body=purchases)
    assert posted.status == 202, posted
    erased = customers[1]
    gone = await call("DELETE", f"{api.url}/v1/customers/{erased}", headers=DEV_AUTH)
    assert gone.status == 200, gone

    # Wait until every window has closed, then measure.
    closes = max(e[0] for e in exposure.values()) + timedelta(seconds=WINDOW_S)
    await asyncio.sleep(max(0.0, (closes - datetime.now(UTC)).total_seconds()) + 1)
    report, printed = run_lift(pipeline, started - timedelta(minutes=1), "--window", f"{WINDOW_S}s")

    counted = [c for c in customers if c != erased]
    currencies = ["EUR"] if any(c in buyers for c in counted) else []  # 0 where none spent
    assert report["left_out"] == {"window_open": 0, "erased": 1, "both_groups": 0}
    for name, control in (("treated", False), ("control", True)):
        members = [c for c in counted if groups[c] is control]
        converted = [c for c in members if c in buyers]
        group = report[name]
        assert group["customers"] == len(members), (name, report)
        assert group["converted"] == len(converted), (name, report)
        spent = {c: round(30 * len(converted) / len(members), 4) for c in currencies}
        assert group["revenue_per_customer"] == spent, (name, report)
    for channel in ("web", "email"):
        members = [c for c in counted if exposure[c][2] == channel]
        found = report["by_channel"][channel]
        assert found["treated"]["customers"] + found["control"]["customers"] == len(members)
    segments = {exposure[c][3] for c in counted}
    assert set(report["by_segment"]) == segments and "unknown" not in segments
    for segment in segments:
        members = [c for c in counted if exposure[c][3] == segment]
        found = report["by_segment"][segment]
        assert found["treated"]["customers"] + found["control"]["customers"] == len(members)
    assert report["read"]["decisions"] >= len(customers)
    assert customers[0] not in printed
    assert " INFO aiokafka" not in printed  # its subscription notices say nothing here
