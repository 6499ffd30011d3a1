"""A churn risk that crosses its threshold raises a retention call, through a real worker
scoring with a published risk model (trained here so that the crossing is certain)."""

from __future__ import annotations

import asyncio
import json
import random
import time
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from agents.risk import ChurnRisk
from agents.risk_features import risk_features
from feature_store import CustomerFeatures
from streams.model_snapshots import RISK, Snapshot
from tests.integration.conftest import Pipeline, consume_all
from tests.integration.test_interventions_pipeline import event, send, settle

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC)


def trained_model() -> ChurnRisk:
    """Risk rises with withdrawn consents; every other feature is noise."""
    rng = random.Random(7)
    base = risk_features(CustomerFeatures(), NOW)
    model = ChurnRisk(warmup=50)
    for i in range(1500):
        x = {k: v + rng.uniform(-0.5, 0.5) for k, v in base.items()}
        x["log_activity_30d"] = rng.uniform(0.0, 3.0)
        x["log_activity_7d"] = rng.uniform(0.0, 3.0)
        withdrawn = i % 2 == 1
        x["consent_withdrawn"] = float(rng.choice((2, 3)) if withdrawn else 0)
        model.learn_one(x, withdrawn)
    return model


async def worker_scoring_risk(pipeline: Pipeline, model: ChurnRisk) -> None:
    """A worker that has loaded ``model`` (published as the risk snapshot), with a
    threshold of 0.7."""
    store = pipeline.store()
    try:
        payload = Snapshot(model=model.to_dict(), offsets={}, updated_at=NOW)
        assert await store.models.publish(RISK, 0, msgspec.json.encode(payload).decode()) == 1
    finally:
        await store.close()
    worker = pipeline.start_worker(MOMENTS_RISK_THRESHOLD="0.7")
    deadline = time.monotonic() + 60
    while worker.metric("moments_model_version", model="risk") < 1:
        assert time.monotonic() < deadline, "the worker never loaded the risk model"
        await asyncio.sleep(0.5)


async def test_a_risk_crossing_its_threshold_raises_a_retention_call(pipeline: Pipeline) -> None:
    model = trained_model()
    assert model.reason == "model"
    await worker_scoring_risk(pipeline, model)

    customer = "crosser"
    first = [event("web_click", customer, NOW - timedelta(minutes=10), "x-click", page="/")]
    await send(pipeline, first)
    await settle(pipeline, {customer}, 1)  # scored low: the band is "low" from here on
    withdrawals = [
        event("consent", customer, NOW - timedelta(minutes=5 - i), f"x-consent-{ch}",
              channel=ch, granted=False)
        for i, ch in enumerate(("sms", "email"))
    ]  # fmt: skip
    # Consent changes are not moments to score at; the customer's next visit is.
    back = event("web_click", customer, NOW - timedelta(minutes=1), "x-back", page="/offers")
    await send(pipeline, withdrawals)
    await settle(pipeline, {customer}, 3)
    await send(pipeline, [back])
    records = await consume_all(
        pipeline.services.kafka_bootstrap, pipeline.topic("interventions"), 1
    )
    alerts = [json.loads(r.value) for r in records]  # type: ignore[attr-defined]
    assert [a["kind"] for a in alerts] == ["retention_call"], alerts
    (alert,) = alerts
    assert alert["customer_id"] == customer and alert["queue"] == "retention"
    (reason,) = alert["reasons"]
    assert reason.startswith("risk_crossed:") and float(reason.split(":")[1]) >= 0.7
    assert alert["context"]["risk"] >= 0.7
    assert alert["trigger_event_id"] == "x-back"
    store = pipeline.store()
    try:
        features = await store.read(customer)
    finally:
        await store.close()
    assert features is not None and features.risk_band == "high"


async def test_a_crossing_on_a_churn_signal_raises_the_retention_call_at_once(
    pipeline: Pipeline,
) -> None:
    """An unsubscribe is scored (a churn signal) but raises nothing by itself. Its
    crossing was stored as the "high" band with no alert, and the next visit, no longer
    a crossing, raised none either: the call was never made. A customer who withdrew
    consent for all crosses too, but is not called: they said not to be."""
    await worker_scoring_risk(pipeline, trained_model())
    leaving, silent = "signal-crosser", "silent-crosser"
    at = [NOW - timedelta(minutes=m) for m in (10, 8, 7, 5, 1)]
    first = [
        event("web_click", leaving, at[0], "s-click", page="/"),
        event("web_click", silent, at[0], "q-click", page="/"),
    ]
    await send(pipeline, first)
    await settle(pipeline, {leaving}, 1)
    await settle(pipeline, {silent}, 1)
    await send(pipeline, [  # not scored: single channels are no churn signal
        event("consent", leaving, at[1], "s-sms", channel="sms", granted=False),
        event("consent", leaving, at[2], "s-email", channel="email", granted=False),
    ])  # fmt: skip
    await settle(pipeline, {leaving}, 3)
    await send(pipeline, [
        event("email", leaving, at[3], "s-unsub", action="unsubscribed"),
        event("consent", silent, at[3], "q-all", channel="all", granted=False),
    ])  # fmt: skip
    await settle(pipeline, {leaving}, 4)
    await settle(pipeline, {silent}, 2)
    await send(pipeline, [
        event("web_click", leaving, at[4], "s-back", page="/offers"),
        event("web_click", silent, at[4], "q-back", page="/offers"),
    ])  # fmt: skip
    await settle(pipeline, {leaving}, 5)
    await settle(pipeline, {silent}, 3)
    records = await consume_all(
        pipeline.services.kafka_bootstrap, pipeline.topic("interventions"), 2, wait_s=15
    )
    alerts = [json.loads(r.value) for r in records]  # type: ignore[attr-defined]
    assert [(a["kind"], a["trigger_event_id"]) for a in alerts] == [("retention_call", "s-unsub")]
    assert alerts[0]["queue"] == "retention"
    store = pipeline.store()
    try:
        features = await store.read(silent)
    finally:
        await store.close()
    assert features is not None and features.risk_band == "high"  # crossed, not called
