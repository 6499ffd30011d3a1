"""``moments rebuild`` stores the churn-risk band and snapshot live took at a customer's
last scored touchpoint, though touchpoints that are not scored (emails clicked, surveys)
ran on for days after it: the store keeps only the 31 newest daily buckets, counted back
from the customer's newest, so a read as of that touchpoint after the whole replay missed
the oldest days of its 30-day figures (a complaint 25 days before it, here)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from agents.risk import ChurnRisk
from agents.risk_features import risk_features_at
from agents.risk_watch import risk_band
from feature_store import FeatureStore, StoreConfig
from schemas import Call, Consent, Email, Survey, TouchpointEvent, encode_touchpoint
from streams.services import LocalRedis
from tests.integration.conftest import Pipeline
from tests.integration.test_rebuild_lifetimes import rebuilt
from tests.integration.test_rebuild_records import write

pytestmark = pytest.mark.integration


def history(customer: str, scored: datetime, later: str) -> list[TouchpointEvent]:
    """Complaint calls 25 days before ``scored`` and at it (the last scored touchpoint),
    consent withdrawn on four channels before, and one ``later`` touchpoint (not scored) a
    day for ten days after it (surveys from the second day: a survey's lifetime mean counts
    in a rebuilt profile, a limit of its own)."""
    early = scored - timedelta(days=25)
    events: list[TouchpointEvent] = [
        Consent(event_id=f"{customer}-w{i}", customer_id=customer,
                ts=early - timedelta(minutes=1 + i), channel=channel, granted=False)
        for i, channel in enumerate(("email", "sms", "call", "web"))
    ]  # fmt: skip
    events += [Call(event_id=f"{customer}-c{i}", customer_id=customer, ts=at, status="started",
                    direction="inbound", reason="complaint")
               for i, at in enumerate((early, scored))]  # fmt: skip
    for day in range(1, 11):
        at, event_id = scored + timedelta(days=day), f"{customer}-l{day}"
        if later == "email":
            events.append(Email(event_id=event_id, customer_id=customer, ts=at, action="clicked"))
        elif day > 1:
            events.append(Survey(event_id=event_id, customer_id=customer, ts=at, score=5,
                                 scale="csat5"))  # fmt: skip
    return events


async def live_view(
    store: FeatureStore, customer: str, events: list[TouchpointEvent], scored: datetime
) -> dict[str, float]:
    """The figures live scored at ``scored``: what was applied up to it, read then."""
    await store.apply([e for e in events if e.ts <= scored])
    features = await store.read(customer, now=scored.timestamp())
    assert features is not None
    return risk_features_at(features, scored)


async def test_rebuilt_risk_state_counts_the_whole_window_of_the_last_scored_touchpoint(
    pipeline: Pipeline, private_redis: LocalRedis
) -> None:
    scored = datetime.now(UTC).replace(microsecond=0) - timedelta(days=12)
    later = {"rw-mailed": "email", "rw-surveyed": "survey"}
    stories = {c: history(c, scored, kind) for c, kind in later.items()}
    records = [(e.customer_id.encode(), encode_touchpoint(e)) for s in stories.values() for e in s]
    await write(pipeline, "touchpoints", records)
    _, store = await rebuilt(pipeline, private_redis)
    # (another prefix, once the rebuild checked its target empty)
    live = FeatureStore.from_url(private_redis.url, StoreConfig(secret=b"s", prefix="live"))
    try:
        wanted = {c: await live_view(live, c, events, scored) for c, events in stories.items()}
    finally:
        await live.close()
    try:
        for customer, x in wanted.items():
            assert x["complaints_30d"] == 2
            band = risk_band(ChurnRisk().predict_one(x), 0.7)  # no examples: the baseline
            assert band == "high"  # with one complaint: low (a spurious crossing next)
            profile = (await store.raw(customer))["profile"]
            snapshot = json.loads(profile["risk_snapshot"])
            assert profile["risk_band"] == band, customer
            assert (snapshot["x"], snapshot["event_id"]) == (x, f"{customer}-c1"), customer
    finally:
        await store.close()
