"""Quiet hours in the customer's own timezone, told by a touchpoint: real Kafka, Redis,
a worker and the API.

The catalogue's quiet hours for sms span the two hours around the present moment in
Kolkata (UTC+05:30, no summer time), and its own timezone is UTC, where that span is
hours away: only a customer known to be in Kolkata is held back.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.integration.conftest import Pipeline, Worker
from tests.integration.test_api_support import DEV_AUTH, call, event, eventually
from tests.integration.test_catalogue_live import recommended

pytestmark = pytest.mark.integration


def catalogue(span: str) -> str:
    return f"""
version = "tz-1"

[contact_policy]
timezone = "UTC"
quiet_hours = {{ sms = "{span}" }}

[[offers]]
offer_id = "sms-reminder"
title = "Your basket is waiting"
channels = ["sms"]
"""


async def on_sms(api: Worker, customer_id: str) -> dict[str, Any]:
    return await recommended(api, customer_id, "sms")


async def post(api: Worker, body: Any) -> Any:
    return await call("POST", f"{api.url}/v1/events", headers=DEV_AUTH, body=body)


async def test_quiet_hours_follow_the_timezone_the_newest_touchpoint_told(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    kolkata = datetime.now(ZoneInfo("Asia/Kolkata"))
    span = f"{kolkata - timedelta(hours=1):%H:%M}-{kolkata + timedelta(hours=1):%H:%M}"
    path = tmp_path / "offers.toml"
    path.write_text(catalogue(span))
    settings = {"MOMENTS_CATALOGUE_PATH": str(path), "MOMENTS_CONTROL_PERCENT": "0"}
    pipeline.start_worker(**settings)
    api = pipeline.start_api(**settings, MOMENTS_API_BUDGET_MS="5000")

    told = event("web_click", "tz-kolkata", "tz-e1", minutes_ago=10, timezone="Asia/Kolkata")
    untold = event("web_click", "tz-untold", "tz-e2", minutes_ago=10)
    accepted = await post(api, [told, untold])
    assert accepted.status == 202, accepted

    async def timezone_of(customer_id: str) -> str | None:
        reply = await call("GET", f"{api.url}/v1/customers/{customer_id}", headers=DEV_AUTH)
        return reply.json.get("timezone") if reply.status == 200 else None

    assert await eventually(lambda: timezone_of("tz-kolkata"), "the told timezone") == (
        "Asia/Kolkata"
    )
    held = await on_sms(api, "tz-kolkata")
    assert held["offers"] == [] and "suppressed:quiet_hours:sms" in held["reasons"], held
    untold_answer = await on_sms(api, "tz-untold")  # the catalogue's timezone: not quiet
    assert [o["offer_id"] for o in untold_answer["offers"]] == ["sms-reminder"], untold_answer

    # a timezone that is no IANA name (a producer's own field) is ignored: the event is
    # taken, and the customer's timezone stays as it was
    bad = event("web_click", "tz-kolkata", "tz-e3", minutes_ago=1, timezone="Asia/Atlantis")
    assert (await post(api, bad)).status == 202

    # an older touchpoint from elsewhere does not move it; a newer one does
    older = event("web_click", "tz-kolkata", "tz-e4", minutes_ago=60, timezone="Europe/London")
    assert (await post(api, older)).status == 202

    async def applied(event_id: str) -> bool:
        reply = await call("GET", f"{api.url}/v1/customers/tz-kolkata", headers=DEV_AUTH)
        return event_id in [t["event_id"] for t in reply.json["recent_touchpoints"]]

    await eventually(lambda: applied("tz-e3"), "the touchpoint with no usable timezone")
    await eventually(lambda: applied("tz-e4"), "the older touchpoint")
    assert await timezone_of("tz-kolkata") == "Asia/Kolkata"
    newer = event("web_click", "tz-kolkata", "tz-e5", minutes_ago=1, timezone="Europe/London")
    moved = event("web_click", "tz-untold", "tz-e6", minutes_ago=1, timezone="Asia/Kolkata")
    assert (await post(api, [newer, moved])).status == 202

    async def moved_both() -> bool:
        return (await timezone_of("tz-kolkata"), await timezone_of("tz-untold")) == (
            "Europe/London",
            "Asia/Kolkata",
        )

    await eventually(moved_both, "the newer touchpoints' timezones")
    back = await on_sms(api, "tz-kolkata")
    assert [o["offer_id"] for o in back["offers"]] == ["sms-reminder"], back
    assert "suppressed:quiet_hours:sms" in (await on_sms(api, "tz-untold"))["reasons"]
