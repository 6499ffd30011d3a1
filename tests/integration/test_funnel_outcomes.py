"""One shown offer is one example, however many of its outcomes a site reports: a web
page that reports the funnel (``clicked``, then ``accepted``), or a timeout's ``ignored``
followed by a late ``accepted``, taught the bandit twice for one impression (58 updates
for 29 impressions), over-rating the offers of funnel-reporting surfaces."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agents.bandit import LinUCBOffers
from agents.context import DIMENSION, learnable
from agents.learning import REWARDS
from streams.model_snapshots import MODEL, restore
from tests.integration.conftest import Pipeline
from tests.integration.test_api_support import once_counted
from tests.integration.test_learning import clicks, decisions_for
from tests.integration.test_touchpoints_pipeline import produce

pytestmark = pytest.mark.integration

# what each impression's customer did, in the order their site reported it
FUNNELS = [("clicked", "accepted"), ("ignored", "accepted"), ("accepted", "dismissed")]


def funnel_outcomes(decisions: list[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
    ts = datetime.now(UTC)
    records = []
    for n, d in enumerate(decisions):
        offer = d["offers"][0]["offer_id"]
        for i, verdict in enumerate(FUNNELS[n % len(FUNNELS)]):
            at = (ts + timedelta(seconds=i)).isoformat().replace("+00:00", "Z")
            body = {"decision_id": d["decision_id"], "customer_id": d["customer_id"],
                    "offer_id": offer, "outcome": verdict, "ts": at}  # fmt: skip
            records.append((d["customer_id"].encode(), json.dumps(body).encode()))
    return records


async def model_like(pipeline: Pipeline, reference: LinUCBOffers, wait_s: float = 90) -> Any:
    """The published model, once it predicts what ``reference`` does (the last one read
    when none does within ``wait_s``)."""
    store = pipeline.store()
    model = None
    try:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            found = await store.models.load(MODEL)
            if found is not None:
                model = restore(found[1])[0]
                if set(model.arms) == set(reference.arms) and all(
                    model.arms[a].b == pytest.approx(reference.arms[a].b, abs=1e-9)
                    for a in reference.arms
                ):
                    await asyncio.sleep(3)  # anything learned twice would show now
                    found = await store.models.load(MODEL)
                    assert found is not None
                    return restore(found[1])[0]
            await asyncio.sleep(0.5)
        return model
    finally:
        await store.close()


async def test_one_shown_offer_teaches_once_by_its_strongest_outcome(pipeline: Pipeline) -> None:
    worker = pipeline.start_worker()
    first = await decisions_for(pipeline, clicks(30))
    assert len(first) >= 6
    await produce(
        pipeline.services.kafka_bootstrap, pipeline.topic("offer-outcomes"), funnel_outcomes(first)
    )
    # as if each impression had been reported once, with its strongest outcome
    reference = LinUCBOffers(DIMENSION)
    for n, d in enumerate(first):
        x = learnable(d["context"])
        assert x is not None
        strongest = max(REWARDS[v] for v in FUNNELS[n % len(FUNNELS)])
        reference.learn_one(x, d["offers"][0]["offer_id"], strongest)
    model = await model_like(pipeline, reference)
    assert model is not None
    assert model.updates == len(first), "each impression learned once"
    assert {a: s.n for a, s in model.arms.items()} == {a: s.n for a, s in reference.arms.items()}
    for d in first:
        x = learnable(d["context"])
        assert x is not None
        for arm in reference.arms:
            assert model.predict_one(x, arm) == pytest.approx(
                reference.predict_one(x, arm), abs=1e-9
            )
    # each outcome counted once, the impression learned once: its later stronger outcome
    # relabels it, a weaker one teaches nothing
    kinds = [FUNNELS[n % len(FUNNELS)] for n in range(len(first))]
    assert worker.metric("moments_learning_outcomes_total", result="learned") == len(first)
    relabelled = sum(k[0] != "accepted" for k in kinds)
    assert worker.metric("moments_learning_outcomes_total", result="relabelled") == relabelled
    superseded = len(first) - relabelled

    # a weaker outcome changes no model: counted (its dismissal too) maybe after it matched
    def set_aside() -> float:
        return worker.metric("moments_learning_outcomes_total", result="superseded")

    assert await once_counted(set_aside, superseded, "the weaker outcomes counted") == superseded
    for verdict in ("clicked", "ignored", "accepted", "dismissed"):
        assert worker.metric("moments_outcomes_total", outcome=verdict) == sum(
            verdict in k for k in kinds
        )
