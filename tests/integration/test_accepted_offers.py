"""An offer the customer accepted is not made to them again, on real Kafka and Redis: the
learner keeps the acceptance (joined to its decision), and both deciders, the API and the
worker, hold the offer back with ``suppressed:accepted:<offer>``; an outcome read again
changes nothing, and an erased customer's late outcome brings no key back."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from feature_store import FeatureStore
from schemas import decode_touchpoint
from tests.integration.conftest import Pipeline, Worker
from tests.integration.test_api_support import (
    DEV_AUTH,
    call,
    event,
    eventually,
    iso,
    keys_tagged,
    left_by_erasure,
    read_to_end,
)
from tests.integration.test_offer_budgets import offer_ids, recommended
from tests.integration.test_touchpoints_pipeline import produce

pytestmark = pytest.mark.integration

CATALOGUE = """
version = "accepted-1"
default_offers = ["tips"]

[[offers]]
offer_id = "premium-upgrade"
title = "Premium membership"
channels = ["web"]
value = 100.0
priority = 10.0

[[offers]]
offer_id = "tips"
title = "Weekly tips"
channels = ["web"]
"""
UPGRADE = "premium-upgrade"


def started(pipeline: Pipeline, tmp_path: Path) -> tuple[Worker, Worker]:
    """A worker and an API deciding by the rules with the catalogue above, no control
    group."""
    path = tmp_path / "offers.toml"
    path.write_text(CATALOGUE)
    settings = {"MOMENTS_CATALOGUE_PATH": str(path), "MOMENTS_POLICY": "rules",
                "MOMENTS_CONTROL_PERCENT": "0"}  # fmt: skip
    return pipeline.start_worker(**settings), pipeline.start_api(**settings)


def accepted(decision: dict[str, Any], customer_id: str, at: datetime) -> tuple[bytes, bytes]:
    body = {"decision_id": decision["decision_id"], "customer_id": customer_id,
            "offer_id": UPGRADE, "outcome": "accepted", "ts": iso(at)}  # fmt: skip
    return customer_id.encode(), json.dumps(body).encode()


async def accepted_at(store: FeatureStore, customer_id: str) -> datetime | None:
    features = await store.read(customer_id)
    return None if features is None else features.contact.accepted.get(UPGRADE)


async def test_an_offer_accepted_is_not_offered_again_and_a_copy_changes_nothing(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    worker, api = started(pipeline, tmp_path)
    bootstrap, outcomes = pipeline.services.kafka_bootstrap, pipeline.topic("offer-outcomes")
    store = pipeline.store()
    try:
        customer = "acc-1"
        first = await recommended(api, customer)
        assert offer_ids(first)[0] == UPGRADE, first
        took = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
        await produce(bootstrap, outcomes, [accepted(first, customer, took)])
        assert await eventually(lambda: accepted_at(store, customer), "acceptance kept") == took

        # The API's next recommendation holds the offer back, saying why.
        after = await recommended(api, customer)
        assert UPGRADE not in offer_ids(after) and offer_ids(after) == ["tips"], after
        assert f"suppressed:accepted:{UPGRADE}" in after["reasons"], after
        # And so does the worker's, on the customer's next touchpoint.
        click = event("web_click", customer, "acc-click-1", minutes_ago=0.1)
        await produce(bootstrap, pipeline.topic("touchpoints"),
                      [(customer.encode(), json.dumps(click).encode())])  # fmt: skip

        async def worker_decision() -> dict[str, Any] | None:
            for r in await read_to_end(bootstrap, pipeline.topic("next-best-offers")):
                body: dict[str, Any] = json.loads(r.value)
                if body["trigger_event_id"] == "acc-click-1":
                    return body
            return None

        decided = await eventually(worker_decision, "the worker's decision")
        assert UPGRADE not in offer_ids(decided), decided
        assert f"suppressed:accepted:{UPGRADE}" in decided["reasons"], decided

        # The same outcome redelivered, and a copy of it dated earlier: claimed once,
        # they change nothing.
        before = worker.metric("moments_learning_outcomes_total", result="duplicate")
        again = [accepted(first, customer, took), accepted(first, customer, took - timedelta(1))]
        await produce(bootstrap, outcomes, again)

        async def both_read() -> bool:
            now = worker.metric("moments_learning_outcomes_total", result="duplicate")
            return now >= before + 2

        await eventually(both_read, "the copies read")
        assert await accepted_at(store, customer) == took
        # the profile shows it too, as the features do
        reply = await call("GET", f"{api.url}/v1/customers/{customer}", headers=DEV_AUTH)
        assert reply.status == 200, reply
        assert reply.json["features"]["contact"]["accepted"] == {UPGRADE: iso(took)}, reply
    finally:
        await store.close()


async def test_an_erased_customers_late_acceptance_leaves_no_key(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    worker, api = started(pipeline, tmp_path)
    bootstrap, outcomes = pipeline.services.kafka_bootstrap, pipeline.topic("offer-outcomes")
    store = pipeline.store()
    try:
        # one accepted and erased: the erasure takes the acceptance with the profile
        kept, gone = "acc-kept", "acc-gone"
        kept_decision = await recommended(api, kept)
        took = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
        await produce(bootstrap, outcomes, [accepted(kept_decision, kept, took)])
        assert await eventually(lambda: accepted_at(store, kept), "acceptance kept") == took
        # one erased before their outcome comes: it writes nothing
        gone_decision = await recommended(api, gone)
        for customer in (kept, gone):
            erased = await call("DELETE", f"{api.url}/v1/customers/{customer}", headers=DEV_AUTH)
            assert erased.status == 200, erased
        tags = {c: store.pseudonym(c) for c in (kept, gone)}
        left = {c: await keys_tagged(pipeline.services.redis_url, t) for c, t in tags.items()}
        for customer, keys in left.items():
            tombstone = next(k for k in keys if k.endswith(":erased"))
            assert keys == left_by_erasure(tombstone), (customer, keys)

        before = worker.metric("moments_learning_outcomes_total", result="erased")
        late = [accepted(gone_decision, gone, took), accepted(kept_decision, kept, took)]
        await produce(bootstrap, outcomes, late)

        async def counted_erased() -> bool:
            now = worker.metric("moments_learning_outcomes_total", result="erased")
            return now >= before + 2

        await eventually(counted_erased, "the late outcomes read")
        for customer, tag in tags.items():
            assert await keys_tagged(pipeline.services.redis_url, tag) == left[customer]
    finally:
        await store.close()


async def test_the_store_keeps_the_newest_acceptance_and_writes_none_for_the_erased(
    pipeline: Pipeline,
) -> None:
    """``accepted.lua`` on its own: the newest time per offer; nothing written for an
    erased customer (their tombstone), nor for one without a profile."""
    store = pipeline.store()
    try:
        known, erased, stranger = "acc-store-1", "acc-store-2", "acc-store-3"
        clicks = [decode_touchpoint(json.dumps(event("web_click", c, f"acc-{c}")))
                  for c in (known, erased)]  # fmt: skip
        await store.apply(clicks)
        await store.erase(erased)
        at = datetime(2026, 12, 1, 10, tzinfo=UTC)
        later = at + timedelta(hours=1)
        asked = [(known, UPGRADE, at), (erased, UPGRADE, at), (stranger, UPGRADE, at)]
        assert await store.acceptances.record(asked) == ["recorded", "erased", "no_profile"]
        assert await accepted_at(store, known) == at
        # read again, or an older one: nothing changes; a newer one is kept
        assert await store.acceptances.record([(known, UPGRADE, at)]) == ["held"]
        assert await store.acceptances.record([(known, UPGRADE, at - timedelta(1))]) == ["held"]
        assert await accepted_at(store, known) == at
        # a copy of one claimed before, stamped later (sent again): the time held stays
        assert await store.acceptances.record([(known, UPGRADE, later)], first_only=True) == [
            "held"
        ]
        assert await accepted_at(store, known) == at
        assert await store.acceptances.record([(known, UPGRADE, later), (known, "tips", at)]) == [
            "recorded", "recorded"
        ]  # fmt: skip
        features = await store.read(known)
        assert features is not None and features.contact.accepted == {UPGRADE: later, "tips": at}
        redis_url = pipeline.services.redis_url
        gone = await keys_tagged(redis_url, store.pseudonym(erased))
        assert gone == left_by_erasure(next(k for k in gone if k.endswith(":erased")))
        assert await keys_tagged(redis_url, store.pseudonym(stranger)) == []
    finally:
        await store.close()
