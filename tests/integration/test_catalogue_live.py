"""A catalogue published while the worker and the API run is used without a restart.

Real Kafka and Redis; the catalogue file is replaced the way a deployment replaces it
(a new file renamed over the old one), then replaced by an invalid one, which both
processes refuse while they go on deciding with the last valid catalogue.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from streams.services import free_port
from streams.settings import Settings
from tests.integration.conftest import Pipeline, Worker
from tests.integration.test_api_support import (
    DEV_AUTH,
    call,
    event,
    eventually,
    metric_total,
    read_to_end,
)
from tests.integration.test_touchpoints_pipeline import produce

pytestmark = pytest.mark.integration

WINTER = """
version = "live-2"
default_offers = ["winter-sale"]

[[offers]]
offer_id = "winter-sale"
title = "Winter sale: 20% off"
channels = ["web", "email"]
value = 20.0
"""


def publish(path: Path, text: str) -> None:
    """Write next to the file, then rename over it: readers never see half a file."""
    staged = path.with_suffix(".staged")
    staged.write_text(text)
    os.replace(staged, path)


async def answer(api: Worker, customer_id: str) -> dict[str, Any]:
    reply = await call(
        "GET",
        f"{api.url}/v1/customers/{customer_id}/recommendations?channel=web&limit=5",
        headers=DEV_AUTH,
    )
    assert reply.status == 200, reply
    assert reply.json["fallback"] is False, reply
    body: dict[str, Any] = reply.json
    return body


async def recommended(api: Worker, customer_id: str, channel: str) -> dict[str, Any]:
    """A decided answer (not a fallback) for the customer on the channel."""
    url = f"{api.url}/v1/customers/{customer_id}/recommendations?channel={channel}"
    reply = await call("GET", url, headers=DEV_AUTH)
    assert reply.status == 200 and reply.json["fallback"] is False, reply
    body: dict[str, Any] = reply.json
    return body


async def offered(api: Worker, customer_id: str) -> list[dict[str, Any]]:
    offers: list[dict[str, Any]] = (await answer(api, customer_id))["offers"]
    return offers


async def test_worker_and_api_decide_with_a_catalogue_published_while_they_run(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    path = tmp_path / "offers.toml"
    shutil.copy(Settings().catalogue_path, path)
    settings = {
        "MOMENTS_CATALOGUE_PATH": str(path),
        "MOMENTS_CATALOGUE_CHECK_S": "0.2",
        "MOMENTS_POLICY": "rules",
        "MOMENTS_CONTROL_PERCENT": "0",
        "MOMENTS_API_BUDGET_MS": "5000",
    }
    worker = pipeline.start_worker(**settings)
    api = pipeline.start_api(**settings)
    first = await answer(api, "live-1")
    before = {o["offer_id"] for o in first["offers"]}
    assert before and "winter-sale" not in before
    assert first["catalogue_version"] == "2026-11-demo"

    publish(path, WINTER)

    async def api_uses_winter() -> bool:
        return [o["offer_id"] for o in await offered(api, "live-2")] == ["winter-sale"]

    await eventually(api_uses_winter, "the API decides with the new catalogue", within=20)
    third = await answer(api, "live-3")
    [offer] = third["offers"]
    assert offer["title"] == "Winter sale: 20% off"
    assert third["catalogue_version"] == "live-2"
    for process in (api, worker):  # each process reads the file on its own clock

        async def applied(process: Worker = process) -> bool:
            return metric_total(process, "moments_catalogue_info", version="live-2") == 1.0

        await eventually(applied, "the new catalogue in use", within=20)
        assert process.metric("moments_catalogue_reloads_total", outcome="applied") == 1.0
        assert process.metric("moments_catalogue_offers") == 1.0
        assert "moments_catalogue_file_refused 0.0" in process.get("/metrics")[1]

    # the worker's next decision, for a web click produced to Kafka, uses it too
    click = event("web_click", "live-4", "live-click-1", minutes_ago=0)
    await produce(pipeline.services.kafka_bootstrap, pipeline.topic("touchpoints"),
                  [(b"live-4", json.dumps(click).encode())])  # fmt: skip
    decisions_topic = pipeline.topic("next-best-offers")

    async def worker_decision() -> list[str] | None:
        for record in await read_to_end(pipeline.services.kafka_bootstrap, decisions_topic):
            decision = json.loads(record.value)
            if decision["trigger_event_id"] == "live-click-1":
                return [decision["catalogue_version"], *(o["offer_id"] for o in decision["offers"])]
        return None

    decided = await eventually(worker_decision, "the worker's decision")
    assert decided == ["live-2", "winter-sale"]

    # an invalid catalogue is refused by both; they go on with the last valid one
    publish(path, WINTER.replace('"winter-sale"]', '"no-such-offer"]'))
    for process in (api, worker):

        async def refused(process: Worker = process) -> bool:
            return process.metric("moments_catalogue_reloads_total", outcome="refused") == 1.0

        await eventually(refused, "the invalid catalogue refused", within=20)
        assert metric_total(process, "moments_catalogue_info", version="live-2") == 1.0
        # and said to be, for as long as it stays (MomentsCatalogueRefused)
        assert process.metric("moments_catalogue_file_refused") == 1.0
        assert "offer catalogue refused, still using version 'live-2'" in (
            process.log_path.read_text()
        )
    assert [o["offer_id"] for o in await offered(api, "live-5")] == ["winter-sale"]


async def test_a_hangup_signal_reads_the_catalogue_at_once(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    path = tmp_path / "offers.toml"
    shutil.copy(Settings().catalogue_path, path)
    settings = {"MOMENTS_CATALOGUE_PATH": str(path), "MOMENTS_CATALOGUE_CHECK_S": "0"}
    worker = pipeline.start_worker(**settings)
    api = pipeline.start_api(**settings)
    publish(path, WINTER)
    await asyncio.sleep(0.5)  # no polling: nothing changes by itself
    for process in (api, worker):
        assert metric_total(process, "moments_catalogue_info", version="2026-11-demo") == 1.0
        process.proc.send_signal(signal.SIGHUP)

    async def applied() -> bool:
        return all(metric_total(process, "moments_catalogue_info", version="live-2") == 1.0
                   for process in (api, worker))  # fmt: skip

    # both within 4 s of the signal: polling (were 0 read as the default 5 s) takes a
    # change only once two checks 5 s apart have read it, so this is the signal's doing
    await eventually(applied, "the catalogue read on SIGHUP", within=4)
    for process in (api, worker):
        assert process.proc.poll() is None  # SIGHUP no longer ends the process


async def test_a_hangup_while_the_worker_starts_neither_ends_it_nor_goes_unread(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """The worker reads the catalogue on SIGHUP once it has joined its group; a SIGHUP
    before that ended the process (its default)."""
    path = tmp_path / "offers.toml"
    shutil.copy(Settings().catalogue_path, path)
    port = free_port()
    env = {**pipeline.env(port), "MOMENTS_CATALOGUE_PATH": str(path),
           "MOMENTS_CATALOGUE_CHECK_S": "0", "MOMENTS_LOG_LEVEL": "info"}  # fmt: skip
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as out:
        proc = subprocess.Popen(  # noqa: ASYNC220 (starting it does not block)
            [sys.executable, "-m", "streams.cli", "worker"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    worker = Worker(proc, port, log_path)
    pipeline.workers.append(worker)

    async def starting() -> bool:
        return " worker: Kafka " in log_path.read_text()  # its start-up line

    await eventually(starting, "the worker starting", within=30)
    publish(path, WINTER)
    proc.send_signal(signal.SIGHUP)  # long before it has joined its group

    async def applied() -> bool:
        assert proc.poll() is None, log_path.read_text()[-2000:]
        try:
            return metric_total(worker, "moments_catalogue_info", version="live-2") == 1.0
        except OSError:  # not serving yet
            return False

    await eventually(applied, "the catalogue changed while it started", within=60)


def capped(web_per_day: int) -> str:
    return f"""
version = "caps-{web_per_day}"

[contact_policy]
daily_caps = {{ web = {web_per_day} }}

[[offers]]
offer_id = "winter-sale"
title = "Winter sale: 20% off"
channels = ["web"]
"""


async def test_contact_caps_come_from_the_catalogue_and_change_with_it(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """The API honours the catalogue's daily cap for web, counting its own decisions, and
    a catalogue with a higher cap, published while it runs, lets offers through again."""
    path = tmp_path / "offers.toml"
    path.write_text(capped(2))
    api = pipeline.start_api(
        MOMENTS_CATALOGUE_PATH=str(path), MOMENTS_CATALOGUE_CHECK_S="0.2",
        MOMENTS_CONTROL_PERCENT="0", MOMENTS_API_BUDGET_MS="5000",
    )  # fmt: skip
    answers = [await answer(api, "capped-1") for _ in range(3)]
    assert [len(a["offers"]) for a in answers] == [1, 1, 0], answers
    assert "suppressed:fatigue:web:day" in answers[2]["reasons"]
    assert (await offered(api, "capped-2")) != []  # another customer: their own count

    publish(path, capped(5))

    async def lifted() -> dict[str, Any] | None:
        found = await answer(api, "capped-1")
        return found if found["catalogue_version"] == "caps-5" else None

    # under the old caps "capped-1" still gets nothing (and that does not count)
    later = await eventually(lifted, "the catalogue with the higher cap", within=20)
    assert len(later["offers"]) == 1, later


async def test_quiet_hours_hold_back_a_channel_and_lift_when_the_catalogue_changes(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """Quiet hours around now on sms: no sms offers, web untouched; published without
    them, sms offers come back."""
    now = datetime.now(UTC)
    span = f"{(now - timedelta(hours=1)):%H:%M}-{(now + timedelta(hours=1)):%H:%M}"
    quiet = f"""
version = "quiet-1"

[contact_policy]
timezone = "UTC"
quiet_hours = {{ sms = "{span}" }}

[[offers]]
offer_id = "winter-sale"
title = "Winter sale: 20% off"
channels = ["web", "sms"]
"""
    path = tmp_path / "offers.toml"
    path.write_text(quiet)
    api = pipeline.start_api(
        MOMENTS_CATALOGUE_PATH=str(path), MOMENTS_CATALOGUE_CHECK_S="0.2",
        MOMENTS_CONTROL_PERCENT="0", MOMENTS_API_BUDGET_MS="5000",
    )  # fmt: skip

    async def on(channel: str) -> dict[str, Any]:
        return await recommended(api, "quiet-1", channel)

    held = await on("sms")
    assert held["offers"] == [] and "suppressed:quiet_hours:sms" in held["reasons"], held
    listed = (await call("GET", f"{api.url}/v1/offers?channel=sms", headers=DEV_AUTH)).json
    assert listed["contact_caps"]["sms"]["quiet_hours"] == span
    assert listed["contact_timezone"] == "UTC"
    assert [o["offer_id"] for o in (await on("web"))["offers"]] == ["winter-sale"]

    publish(path, quiet.replace("quiet-1", "quiet-2").replace(f'sms = "{span}"', ""))

    async def lifted() -> dict[str, Any] | None:
        found = await on("sms")
        return found if found["catalogue_version"] == "quiet-2" else None

    after = await eventually(lifted, "the catalogue without quiet hours", within=20)
    assert [o["offer_id"] for o in after["offers"]] == ["winter-sale"], after


async def test_outbound_caps_bound_email_sms_and_call_together(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """One outbound contact a day in all: after an email offer, no sms offer; the web is
    not outbound."""
    path = tmp_path / "offers.toml"
    path.write_text("""
version = "outbound-1"

[contact_policy]
daily_caps = { email = 3, sms = 3 }
weekly_caps = { email = 5, sms = 5 }
outbound_daily_cap = 1

[[offers]]
offer_id = "winter-sale"
title = "Winter sale: 20% off"
channels = ["web", "email", "sms"]
""")
    api = pipeline.start_api(
        MOMENTS_CATALOGUE_PATH=str(path), MOMENTS_CONTROL_PERCENT="0",
        MOMENTS_API_BUDGET_MS="5000",
    )  # fmt: skip

    async def on(channel: str) -> dict[str, Any]:
        return await recommended(api, "outbound-1", channel)

    assert [o["offer_id"] for o in (await on("email"))["offers"]] == ["winter-sale"]
    texted = await on("sms")
    assert texted["offers"] == [] and "suppressed:fatigue:outbound:day" in texted["reasons"]
    assert [o["offer_id"] for o in (await on("web"))["offers"]] == ["winter-sale"]
    listed = (await call("GET", f"{api.url}/v1/offers", headers=DEV_AUTH)).json
    assert listed["outbound_caps"] == {"channels": ["email", "sms", "call"], "day": 1,
                                       "week": None}  # fmt: skip
