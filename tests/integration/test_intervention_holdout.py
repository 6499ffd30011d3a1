"""The interventions' hold-out group on a running worker, and ``moments lift
--interventions``: half the customers who open the cancellation page are held out (no
alert reaches an agent; the alert goes to ``interventions-held-out``), some customers
then call to cancel, and the report counts who churned in each group. The expected
figures are counted here from what the engine published."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.integration.conftest import Pipeline
from tests.integration.test_api_support import DEV_AUTH, call, event, iso, once_counted, read_to_end
from tests.integration.test_lift_report import run_lift

pytestmark = pytest.mark.integration

WINDOW_S = 10
CUSTOMERS = [f"hold-{n}" for n in range(30)]
SALT = "moments-control-v1:interventions"  # the default salt, and the interventions' own


def held_out(customer_id: str) -> bool:
    """The hold-out draw, written here from its definition: 50 % of a salted SHA-256."""
    digest = hashlib.sha256(f"{SALT}:{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100 < 50


async def published(pipeline: Pipeline, topic: str) -> list[dict[str, Any]]:
    records = await read_to_end(pipeline.services.kafka_bootstrap, pipeline.topic(topic))
    return [json.loads(r.value) for r in records]


async def test_held_out_customers_get_no_alert_and_their_churn_is_compared(
    pipeline: Pipeline,
) -> None:
    started = datetime.now(UTC)
    split = {"MOMENTS_INTERVENTION_CONTROL_PERCENT": "50", "MOMENTS_CONTROL_PERCENT": "0"}
    worker = pipeline.start_worker(**split)
    api = pipeline.start_api(**split)
    visits = [event("web_click", c, f"{c}-cancel-page", minutes_ago=0, page="/account/cancel")
              for c in CUSTOMERS]  # fmt: skip
    assert (await call("POST", f"{api.url}/v1/events", headers=DEV_AUTH, body=visits)).status == 202

    for _ in range(120):
        shown = await published(pipeline, "interventions")
        kept = await published(pipeline, "interventions-held-out")
        if len(shown) + len(kept) >= len(CUSTOMERS):
            break
        await asyncio.sleep(0.5)
    assert sorted(a["customer_id"] for a in shown + kept) == sorted(CUSTOMERS)
    assert {a["customer_id"] for a in kept} == {c for c in CUSTOMERS if held_out(c)}
    assert 5 <= len(kept) <= 25, kept  # both groups present
    assert all(a["kind"] == "save_desk" for a in shown + kept)
    assert all(a["control"] is False for a in shown)
    assert all(a["control"] is True and a["reasons"][-1] == "control_group" for a in kept)

    def held() -> float:  # counted a moment after Kafka took them
        return worker.metric("moments_interventions_held_out_total", kind="save_desk")

    assert await once_counted(held, len(kept), "the held-out alerts counted") == len(kept)

    # Every third customer calls to cancel within the window; one more only after it.
    exposure = {a["customer_id"]: datetime.fromisoformat(a["ts"]) for a in shown + kept}
    calls, churned = [], set()
    for n, customer in enumerate(CUSTOMERS):
        if n % 3 == 0:
            at = exposure[customer] + timedelta(seconds=2)
            churned.add(customer)
        elif n == 1:
            at = exposure[customer] + timedelta(seconds=WINDOW_S + 30)
        else:
            continue
        calls.append(event("call", customer, f"{customer}-cancel-call", ts=iso(at),
                           status="started", direction="inbound", reason="cancel"))  # fmt: skip
    assert (await call("POST", f"{api.url}/v1/events", headers=DEV_AUTH, body=calls)).status == 202

    closes = max(exposure.values()) + timedelta(seconds=WINDOW_S)
    await asyncio.sleep(max(0.0, (closes - datetime.now(UTC)).total_seconds()) + 1)
    since = started - timedelta(minutes=1)
    report, printed = run_lift(pipeline, since, "--interventions", "--window", f"{WINDOW_S}s")
    for name, control in (("treated", False), ("control", True)):
        members = [c for c in CUSTOMERS if held_out(c) is control]
        group = report[name]
        assert group["customers"] == len(members), (name, report)
        assert group["churned"] == len([c for c in members if c in churned]), (name, report)
    assert list(report["by_kind"]) == ["save_desk"]
    assert "hold-" not in printed  # counts only, no customer id
