"""A catalogue that makes email, sms and call opt-in: the API and the worker make
offers there only to customers who granted consent, on real Kafka and Redis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from streams.settings import Settings
from tests.integration.conftest import Pipeline
from tests.integration.test_api_support import DEV_AUTH, call, event, eventually
from tests.integration.test_catalogue_live import recommended

pytestmark = pytest.mark.integration

SETTINGS = {"MOMENTS_POLICY": "rules", "MOMENTS_CONTROL_PERCENT": "0",
            "MOMENTS_API_BUDGET_MS": "5000"}  # fmt: skip


def opt_in_catalogue(tmp_path: Path) -> Path:
    text = Path(Settings().catalogue_path).read_text()
    section = "[contact_policy]\n"
    assert text.count(section) == 1
    path = tmp_path / "offers.toml"
    path.write_text(
        text.replace(section, section + 'consent_required = ["email", "sms", "call"]\n')
    )
    return path


async def test_opt_in_channels_need_consent_granted_and_lose_it_with_erasure(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    settings = {**SETTINGS, "MOMENTS_CATALOGUE_PATH": str(opt_in_catalogue(tmp_path))}
    pipeline.start_worker(**settings)
    api = pipeline.start_api(**settings)

    listed = await call("GET", f"{api.url}/v1/offers", headers=DEV_AUTH)
    assert {c: caps["consent_required"] for c, caps in listed.json["contact_caps"].items()} == {
        "web": False, "email": True, "sms": True, "call": True
    }  # fmt: skip

    stranger = await recommended(api, "opt-stranger", "email")
    assert stranger["offers"] == [] and "suppressed:consent_unknown:email" in stranger["reasons"]
    assert (await recommended(api, "opt-stranger", "web"))["offers"]  # the web stays opt-out

    events = [
        event("web_click", "opt-1", "opt-e1", minutes_ago=40, category="books"),
        event("consent", "opt-1", "opt-e2", minutes_ago=30, channel="email", granted=True),
        event("consent", "opt-1", "opt-e3", minutes_ago=20, channel="sms", granted=False),
    ]
    posted = await call("POST", f"{api.url}/v1/events", headers=DEV_AUTH, body=events)
    assert posted.status == 202, posted

    async def mailable() -> dict[str, Any] | None:
        body = await recommended(api, "opt-1", "email")
        return body if body["offers"] else None

    await eventually(mailable, "email offers once consent to email is granted")
    texted = await recommended(api, "opt-1", "sms")
    assert texted["offers"] == [] and "suppressed:consent:sms" in texted["reasons"]
    called = await recommended(api, "opt-1", "call")
    assert called["offers"] == [] and "suppressed:consent_unknown:call" in called["reasons"]

    erased = await call("DELETE", f"{api.url}/v1/customers/opt-1", headers=DEV_AUTH)
    assert erased.status == 200, erased
    after = await recommended(api, "opt-1", "email")  # answered as a stranger: no consent known
    assert after["offers"] == [] and "suppressed:consent_unknown:email" in after["reasons"]
