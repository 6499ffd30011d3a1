"""Every intervention kind, through a real worker on real Kafka and Redis, and its cool-down."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Pipeline, consume_all
from tests.integration.test_api_support import eventually, metric_total
from tests.integration.test_catalogue_live import publish
from tests.integration.test_console_browser import at_risk_history
from tests.integration.test_service_restarts import all_handled
from tests.integration.test_touchpoints_pipeline import produce

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC)


def event(kind: str, customer: str, ts: datetime, event_id: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "event_id": event_id, "customer_id": customer,
            "ts": ts.isoformat().replace("+00:00", "Z"), **fields}  # fmt: skip


def call(customer: str, ts: datetime, event_id: str, reason: str) -> dict[str, Any]:
    return event("call", customer, ts, event_id, status="started", direction="inbound",
                 reason=reason, queue="frontline")  # fmt: skip


def purchases(customer: str, start: datetime, total: float, n: int = 3) -> list[dict[str, Any]]:
    return [event("purchase", customer, start + timedelta(minutes=i), f"{customer}-buy-{i}",
                  order_id=f"{customer}-o{i}", amount=round(total / n, 2), currency="EUR")
            for i in range(n)]  # fmt: skip


def happy(customer: str) -> list[dict[str, Any]]:
    return [
        *purchases(customer, NOW - timedelta(hours=6), 900.0),
        event("survey", customer, NOW - timedelta(hours=5), f"{customer}-survey",
              score=5, scale="csat5"),
    ]  # fmt: skip


async def send(pipeline: Pipeline, events: list[dict[str, Any]]) -> None:
    await produce(
        pipeline.services.kafka_bootstrap,
        pipeline.topic("touchpoints"),
        [(e["customer_id"].encode(), json.dumps(e).encode()) for e in events],
    )


async def settle(pipeline: Pipeline, customers: set[str], events: int) -> None:
    """Wait until the worker applied every event of these customers."""
    store = pipeline.store()
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            profiles = [await store.read(c) for c in customers]
            if sum(p.events for p in profiles if p is not None) >= events:
                return
            await asyncio.sleep(0.3)
        raise AssertionError("the worker did not apply the history in time")
    finally:
        await store.close()


async def test_every_intervention_kind_fires_once_per_cool_down(pipeline: Pipeline) -> None:
    pipeline.start_worker()
    old = NOW - timedelta(days=120)
    history = (
        at_risk_history("risky", NOW)
        + happy("vip")
        + purchases("lapsed", old, 900.0)
        + [call("grumpy", NOW - timedelta(hours=3 - i), f"grumpy-c{i}", "complaint")
           for i in range(2)]
    )  # fmt: skip
    await send(pipeline, history)
    await settle(pipeline, {"risky", "vip", "lapsed", "grumpy"}, len(history))

    triggers = [
        call("risky", NOW, "t-risky", "billing"),  # at risk: retention call
        call("vip", NOW, "t-vip", "sales"),  # valuable: VIP attention
        call("leaver", NOW, "t-leaver", "cancel"),  # save desk
        event("web_click", "browser", NOW, "t-browser", page="/account/cancel"),  # save desk
        event("social_mention", "loud", NOW, "t-loud", platform="x", sentiment=-0.9,
              reach=50_000),  # service recovery, priority 1
        call("grumpy", NOW, "t-grumpy", "complaint"),  # third complaint: service recovery
        event("web_click", "lapsed", NOW, "t-lapsed", page="/"),  # back after 120 days
    ]  # fmt: skip
    await send(pipeline, triggers)
    expected = {
        ("risky", "retention_call"), ("vip", "vip_attention"), ("leaver", "save_desk"),
        ("browser", "save_desk"), ("loud", "service_recovery"),
        ("grumpy", "service_recovery"), ("lapsed", "win_back"),
    }  # fmt: skip
    records = await consume_all(
        pipeline.services.kafka_bootstrap, pipeline.topic("interventions"), len(expected)
    )
    alerts = [json.loads(r.value) for r in records]  # type: ignore[attr-defined]
    got = {(a["customer_id"], a["kind"]) for a in alerts}
    assert expected <= got, expected - got
    by = {(a["customer_id"], a["kind"]): a for a in alerts}
    assert by[("risky", "retention_call")]["queue"] == "frontline"
    assert by[("risky", "retention_call")]["context"]["segment"] == "at_risk"
    assert by[("loud", "service_recovery")]["priority"] == 1
    assert by[("leaver", "save_desk")]["priority"] == 1

    # The same triggers again, minutes later: every kind is cooling down, no new alert.
    again = []
    for t in triggers:
        repeat = dict(t, event_id=t["event_id"] + "-again")
        repeat["ts"] = (NOW + timedelta(minutes=2)).isoformat().replace("+00:00", "Z")
        again.append(repeat)
    await send(pipeline, again)
    await settle(pipeline, {"risky", "vip", "leaver", "browser", "loud", "grumpy", "lapsed"},
                 len(history) + len(triggers) + len(again))  # fmt: skip
    await all_handled(pipeline)  # what the batches sent is on the topics
    records = await consume_all(
        pipeline.services.kafka_bootstrap,
        pipeline.topic("interventions"),
        len(alerts) + 1,
        wait_s=5,
    )
    later = [json.loads(r.value) for r in records]  # type: ignore[attr-defined]
    repeated = [(a["customer_id"], a["kind"]) for a in later
                if a["trigger_event_id"].endswith("-again")]  # fmt: skip
    assert repeated == [], repeated


async def test_a_withdrawal_after_a_call_back_raises_one_do_not_call(pipeline: Pipeline) -> None:
    """A save desk raised from the cancellation page is a call to make; the customer then
    withdraws consent to calls: every screen is told not to call them, once."""
    pipeline.start_worker()
    topic = pipeline.topic("interventions")
    leaving = event("web_click", "leaver", NOW, "dnc-page", page="/account/cancel")
    await send(pipeline, [leaving])
    first = await consume_all(pipeline.services.kafka_bootstrap, topic, 1)
    assert [json.loads(r.value)["kind"] for r in first] == ["save_desk"]  # type: ignore[attr-defined]

    def withdrawn(customer: str, event_id: str, minutes: int) -> dict[str, Any]:
        return event("consent", customer, NOW + timedelta(minutes=minutes), event_id,
                     channel="call", granted=False)  # fmt: skip

    # the leaver withdraws twice; a customer with no call-back open withdraws too
    await send(pipeline, [withdrawn("leaver", "dnc-off-1", 1), withdrawn("quiet", "dnc-q", 1)])
    await send(pipeline, [withdrawn("leaver", "dnc-off-2", 2)])
    await settle(pipeline, {"leaver", "quiet"}, 4)
    await all_handled(pipeline)  # what the batches sent is on the topics
    records = await consume_all(pipeline.services.kafka_bootstrap, topic, 3, wait_s=5)
    alerts = [json.loads(r.value) for r in records]  # type: ignore[attr-defined]
    told = [(a["customer_id"], a["kind"], a["trigger_event_id"]) for a in alerts]
    assert told == [("leaver", "save_desk", "dnc-page"), ("leaver", "do_not_call", "dnc-off-1")]
    stop = alerts[1]
    assert (stop["priority"], stop["queue"], stop["reasons"]) == (
        1,
        None,
        ["consent_withdrawn:call"],
    )


def near_noon() -> str:
    """A timezone in which it is about noon now: a day's counts then start over nowhere
    near the test's minutes (at midnight, the call's would be gone from today's)."""
    hours = 12 - NOW.hour  # from -11 to 12: Etc/GMT's signs are the other way round
    return "UTC" if hours == 0 else f"Etc/GMT{'-' if hours > 0 else '+'}{abs(hours)}"


CALL_ONCE_A_DAY = """
version = "call-once-a-day"

[contact_policy]
daily_caps = { call = 1 }
timezone = "%s"

[[offers]]
offer_id = "call-tips"
title = "Tips for their next order"
channels = ["call"]
"""
CALL_TWICE_A_DAY = CALL_ONCE_A_DAY.replace("once", "twice").replace("call = 1", "call = 2")


def start_calling_once_a_day(pipeline: Pipeline, catalogue: Path, **env: str) -> Any:
    """A worker whose catalogue (written to ``catalogue``) allows one call a day, with no
    control group, reading the catalogue only when told (SIGHUP)."""
    catalogue.write_text(CALL_ONCE_A_DAY % near_noon())
    return pipeline.start_worker(MOMENTS_CATALOGUE_PATH=str(catalogue),
                                 MOMENTS_CONTROL_PERCENT="0", MOMENTS_CATALOGUE_CHECK_S="0",
                                 **env)  # fmt: skip


async def test_a_call_back_past_the_call_caps_says_not_to_call(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """A customer made an offer on the call they made (the call channel's one a day, as
    Redis counts it) then visits the cancellation page: the save desk is raised, and says
    not to call them back today; another customer's is a call to make. While the caps
    hold, the next visit raises no second card; once they lift (a catalogue allowing two
    calls a day), the next visit asks for the call, within the save desk's cool-down."""
    catalogue = tmp_path / "call-caps.toml"
    worker = start_calling_once_a_day(pipeline, catalogue)
    await send(pipeline, [call("caller", NOW - timedelta(minutes=5), "caps-call", "support")])
    store = pipeline.store()
    deadline = time.monotonic() + 90
    try:  # the offer made on the call is counted in Redis
        while time.monotonic() < deadline:
            profile = await store.read("caller")
            if profile is not None and profile.contact.shown_today.get("call", 0) >= 1:
                break
            await asyncio.sleep(0.3)
        else:
            raise AssertionError("the call's offer was not counted in time")
    finally:
        await store.close()
    pages = [event("web_click", c, NOW, f"caps-page-{c}", page="/account/cancel")
             for c in ("caller", "browser")]  # fmt: skip
    await send(pipeline, pages)
    alerts = await save_desk_cards(pipeline, 2)
    assert alerts["caller"]["reasons"] == ["visited:cancellation_page", "fatigue:call:day"]
    assert alerts["caller"]["suggested_action"].startswith("Do not call them back before tomorrow")
    assert alerts["browser"]["reasons"] == ["visited:cancellation_page"]
    assert alerts["browser"]["suggested_action"].startswith("Route to the save desk")
    capped_ms = await recorded(pipeline, "caller", "last_intervention_capped:save_desk")
    assert capped_ms == await recorded(pipeline, "caller", "last_intervention:save_desk")

    def visit(n: int) -> dict[str, Any]:
        return event("web_click", "caller", NOW + timedelta(minutes=n), f"caps-page-{n}",
                     page="/account/cancel")  # fmt: skip

    await send(pipeline, [visit(1)])  # the call caps hold still: no second card
    await settle(pipeline, {"caller"}, 3)
    await all_handled(pipeline)
    await lift_the_call_caps(worker, catalogue)
    await send(pipeline, [visit(2)])
    await settle(pipeline, {"caller"}, 4)
    await all_handled(pipeline)  # what the batches sent is on the topics
    records = await consume_all(
        pipeline.services.kafka_bootstrap, pipeline.topic("interventions"), 3, wait_s=10
    )
    cards = [a for a in (json.loads(r.value) for r in records)  # type: ignore[attr-defined]
             if a["customer_id"] == "caller" and a["kind"] == "save_desk"]  # fmt: skip
    assert [(a["trigger_event_id"], a["reasons"]) for a in cards] == [
        ("caps-page-caller", ["visited:cancellation_page", "fatigue:call:day"]),
        ("caps-page-2", ["visited:cancellation_page"]),
    ]
    assert cards[-1]["suggested_action"].startswith("Route to the save desk")


async def save_desk_cards(pipeline: Pipeline, at_least: int) -> dict[str, dict[str, Any]]:
    """The save desk cards on the interventions topic (once it holds ``at_least``
    alerts), the newest of each customer's."""
    records = await consume_all(
        pipeline.services.kafka_bootstrap, pipeline.topic("interventions"), at_least
    )
    return {a["customer_id"]: a for a in (json.loads(r.value) for r in records)  # type: ignore[attr-defined]
            if a["kind"] == "save_desk"}  # fmt: skip


async def lift_the_call_caps(worker: Any, catalogue: Path) -> None:
    """Publish a catalogue allowing two calls a day, and wait until the worker holds it."""
    publish(catalogue, CALL_TWICE_A_DAY % near_noon())
    worker.proc.send_signal(signal.SIGHUP)

    async def lifted() -> bool:
        version = "call-twice-a-day"
        return metric_total(worker, "moments_catalogue_info", version=version) == 1.0

    await eventually(lifted, "the catalogue allowing two calls a day", within=20)


async def recorded(pipeline: Pipeline, customer: str, field: str) -> str:
    """Wait until the worker confirmed the batch: the cool-down is in Redis."""
    store = pipeline.store()
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            found = (await store.raw(customer))["profile"].get(field)
            if found is not None:
                return str(found)
            await asyncio.sleep(0.3)
        raise AssertionError(f"{field} was not recorded in time")
    finally:
        await store.close()


async def test_a_crossings_retention_call_past_the_call_caps_is_owed_until_they_lift(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """A customer made an offer on the call they made (the call channel's one a day),
    then answered a survey very unhappily: at their next visit their churn risk crossed
    its threshold (0.3 here), and the crossing's retention call said not to call them
    back today. A crossing is noticed once, so the call was never asked for again; now,
    once the caps lift, their next visit asks for it, their risk high still."""
    catalogue = tmp_path / "call-caps.toml"
    worker = start_calling_once_a_day(pipeline, catalogue, MOMENTS_RISK_THRESHOLD="0.3")

    def visit(n: int) -> dict[str, Any]:
        return event("web_click", "crosser", NOW + timedelta(minutes=n), f"risk-visit-{n}",
                     page="/offers")  # fmt: skip

    early = NOW - timedelta(hours=1)  # an offer made on the call, the risk low (0.17)
    await send(pipeline, [call("crosser", early, "risk-call", "support")])
    await settle(pipeline, {"crosser"}, 1)
    unhappy = event("survey", "crosser", NOW - timedelta(minutes=30), "risk-survey", score=1,
                    scale="csat5")  # fmt: skip
    await send(pipeline, [unhappy, visit(1)])  # the visit crosses (0.35: no experience left)
    capped_ms = await recorded(pipeline, "crosser", "last_intervention_capped:retention_call")
    assert capped_ms == await recorded(pipeline, "crosser", "last_intervention:retention_call")
    await send(pipeline, [visit(2)])  # the call caps hold still: no second card
    await settle(pipeline, {"crosser"}, 4)
    await all_handled(pipeline)
    await lift_the_call_caps(worker, catalogue)
    await send(pipeline, [visit(3)])
    await settle(pipeline, {"crosser"}, 5)
    await all_handled(pipeline)
    records = await consume_all(
        pipeline.services.kafka_bootstrap, pipeline.topic("interventions"), 2, wait_s=10
    )
    cards = [a for a in (json.loads(r.value) for r in records)  # type: ignore[attr-defined]
             if a["customer_id"] == "crosser" and a["kind"] == "retention_call"]  # fmt: skip
    assert [a["trigger_event_id"] for a in cards] == ["risk-visit-1", "risk-visit-3"], cards
    crossed, owed = cards
    assert crossed["reasons"][0].startswith("risk_crossed:"), crossed
    assert crossed["reasons"][-1] == "fatigue:call:day", crossed
    assert crossed["suggested_action"].startswith("Do not call them back before tomorrow")
    assert owed["reasons"] == ["retention_owed:calls_allowed_again"], owed
    assert owed["queue"] == "retention" and not owed["suggested_action"].startswith("Do not")
