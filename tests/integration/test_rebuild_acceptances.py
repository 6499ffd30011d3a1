"""``moments rebuild`` keeps again the offers customers accepted, on real Kafka and Redis:
the rebuilt profiles hold the same ``accepted:<offer>`` times as the live learner wrote,
joined to the decisions on ``next-best-offers``. It read no outcome, and every customer
who had taken the premium upgrade was offered it again."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from streams.app import build_store
from streams.rebuild import rebuild
from streams.services import LocalRedis
from streams.settings import Settings
from tests.integration.conftest import Pipeline
from tests.integration.test_accepted_offers import UPGRADE, accepted, started
from tests.integration.test_api_support import DEV_AUTH, call, eventually, iso, read_to_end
from tests.integration.test_offer_budgets import recommended
from tests.integration.test_touchpoints_pipeline import produce

pytestmark = pytest.mark.integration


async def test_a_rebuilt_store_keeps_the_offers_accepted_as_the_live_learner_did(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    worker, api = started(pipeline, tmp_path)
    bootstrap = pipeline.services.kafka_bootstrap
    live = pipeline.store()
    buyer, other, early, gone = "rba-buyer", "rba-other", "rba-early", "rba-gone"
    decided = {c: await recommended(api, c) for c in (buyer, other, early, gone)}
    took = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    not_offered = {"decision_id": decided[other]["decision_id"], "customer_id": other,
                   "offer_id": "gold-card", "outcome": "accepted", "ts": iso(took)}  # fmt: skip
    sent = [
        accepted(decided[buyer], buyer, took),
        accepted(decided[buyer], buyer, took + timedelta(seconds=20)),  # a copy: no change
        accepted(decided[buyer], other, took),  # another customer's decision: no context
        (other.encode(), json.dumps(not_offered).encode()),  # an offer it did not make
        accepted(decided[early], early, took - timedelta(hours=1)),  # before its decision
        accepted(decided[early], early, took),  # then a copy: kept, no time being held
        accepted(decided[gone], gone, took),  # kept, then erased with the profile
        (b"bad", b"{not an outcome"),
    ]
    await produce(bootstrap, pipeline.topic("offer-outcomes"), sent)

    async def all_read() -> bool:
        results = {r: worker.metric("moments_learning_outcomes_total", result=r)
                   for r in ("duplicate", "no_context", "offer_not_in_decision")}  # fmt: skip
        kept = [(await live.read(c)).contact.accepted  # type: ignore[union-attr]
                for c in (buyer, early, gone)]  # fmt: skip
        return min(results.values()) >= 1 and results["duplicate"] >= 2 and all(kept)

    async def all_on_the_topic() -> bool:  # the API publishes its decisions on its own
        records = await read_to_end(bootstrap, pipeline.topic("next-best-offers"))
        found = {json.loads(r.value)["decision_id"] for r in records}
        return {d["decision_id"] for d in decided.values()} <= found

    await eventually(all_read, "the outcomes read live")
    await eventually(all_on_the_topic, "the decisions published")
    erased = await call("DELETE", f"{api.url}/v1/customers/{gone}", headers=DEV_AUTH)
    assert erased.status == 200, erased
    worker.stop()
    api.stop()

    settings = Settings.from_env(
        pipeline.env(0) | {"MOMENTS_CATALOGUE_PATH": str(tmp_path / "offers.toml")}
    )
    target = LocalRedis(tmp_path / "rebuilt", appendonly=False)
    target.start()
    rebuilt = build_store(settings, redis_url=target.url)
    try:
        report = await rebuild(settings, rebuilt)
        expected = {buyer: {UPGRADE: took}, other: {}, early: {UPGRADE: took}}
        for customer, accepted_live in expected.items():
            mine, theirs = await rebuilt.read(customer), await live.read(customer)
            assert mine is not None and theirs is not None, customer
            assert theirs.contact.accepted == accepted_live, customer
            assert mine.contact.accepted == accepted_live, customer
        assert await rebuilt.read(gone) is None and await live.read(gone) is None
        # the buyer's first outcome, and the early one's copy (its first dated before the
        # decision); the buyer's copy finds their time held
        assert (report.outcomes, report.acceptances, report.skipped_outcomes) == (8, 2, 1)
    finally:
        await rebuilt.close()
        await live.close()
        target.stop()
