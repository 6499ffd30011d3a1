"""GET /v1/customers/{id}/export: a customer's access request, on real Kafka and Redis.

A worker applies the customer's events and decides; the API makes more decisions than
the profile lists; the learner claims an outcome. The export holds all of it, as the
test finds it independently in Redis and on the topics; after an erasure it holds only
when the customer was erased.
"""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from tests.integration.conftest import Pipeline
from tests.integration.test_api_support import (
    DEV_AUTH,
    assert_error,
    call,
    event,
    eventually,
    keys_tagged,
    outcome,
    read_to_end,
)

pytestmark = pytest.mark.integration


async def test_the_export_holds_all_that_is_kept_and_only_a_tombstone_after_erasure(
    pipeline: Pipeline,
) -> None:
    customer, bystander = f"{pipeline.prefix}asks", f"{pipeline.prefix}other"
    pipeline.start_worker()
    api = pipeline.start_api(MOMENTS_CONTROL_PERCENT="0", MOMENTS_API_BUDGET_MS="5000")
    events = [
        event("web_click", customer, f"{customer}-e1", minutes_ago=30, category="books"),
        event("purchase", customer, f"{customer}-e2", minutes_ago=20, amount=42.0),
        event("email", customer, f"{customer}-e3", minutes_ago=10, action="opened"),
        event("web_click", bystander, f"{bystander}-e1", minutes_ago=5),
    ]
    posted = await call("POST", f"{api.url}/v1/events", headers=DEV_AUTH, body=events)
    assert posted.status == 202, posted
    export_url = f"{api.url}/v1/customers/{customer}/export"

    async def applied() -> bool:
        reply = await call("GET", f"{api.url}/v1/customers/{customer}", headers=DEV_AUTH)
        return reply.status == 200 and reply.json["features"]["events"] == 3

    await eventually(applied, "the worker to apply the events")
    asked = 22  # more than the profile's 20 newest decisions
    answers = []
    for _ in range(asked):
        rec = await call("GET", f"{api.url}/v1/customers/{customer}/recommendations",
                         headers=DEV_AUTH)  # fmt: skip
        assert rec.status == 200, rec
        answers.append(rec.json)
    with_offer = next(a for a in answers if a["offers"])
    clicked = outcome(with_offer["decision_id"], customer, with_offer["offers"][0]["offer_id"])
    assert (await call("POST", f"{api.url}/v1/outcomes", headers=DEV_AUTH,
                       body=clicked)).status == 202  # fmt: skip

    async def everything_kept() -> dict[str, object] | None:
        decided = [r for r in await read_to_end(pipeline.services.kafka_bootstrap,
                                                pipeline.topic("next-best-offers"))
                   if r.key == customer.encode()]  # fmt: skip
        reply = await call("GET", export_url, headers=DEV_AUTH)
        assert reply.status == 200, reply
        body: dict[str, object] = reply.json
        done = len(decided) == len(body["decisions"]) == asked + 2 and body["outcomes"]  # type: ignore[arg-type]
        return body if done else None

    body = await eventually(everything_kept, "every decision and the outcome in the export")
    store = pipeline.store()
    try:
        assert body["customer_id"] == customer and body["subject"] == store.pseudonym(customer)
    finally:
        await store.close()
    assert body["erased_at"] is None
    profile = body["profile"]
    assert profile["features"]["events"] == 3 and profile["customer_id"] == customer
    ids = {d["decision_id"] for d in body["decisions"]}
    assert {a["decision_id"] for a in answers} <= ids  # the 22 asked, and the worker's two
    assert all(d["customer_id"] == customer for d in body["decisions"])
    assert body["outcomes"] == [{"decision_id": with_offer["decision_id"],
                                 "offer_id": with_offer["offers"][0]["offer_id"],
                                 "outcome": "clicked"}]  # fmt: skip
    facts = {e["id"] for e in body["events_applied"]}
    assert {f"t:{e['event_id']}" for e in events[:3]} <= facts
    assert not any(bystander in json.dumps(part) for part in body.values())
    stored = body["stored"]
    assert stored["profile"] and stored["windows"] and len(stored["recent_touchpoints"]) == 3
    topics = {t["topic"] for t in body["kept_in_topics"]}
    assert {pipeline.topic("touchpoints"), pipeline.topic("next-best-offers")} <= topics

    assert_error(await call("GET", f"{api.url}/v1/customers/nobody/export", headers=DEV_AUTH), 404)
    assert_error(await call("GET", export_url), 401)

    # Erased: all that is kept is when, under the keyed hash of the id.
    erased = await call("DELETE", f"{api.url}/v1/customers/{customer}", headers=DEV_AUTH)
    assert erased.status == 200, erased
    after = await call("GET", export_url, headers=DEV_AUTH)
    assert after.status == 200, after
    gone = after.json
    tombstone_at, receipt_at = (datetime.fromisoformat(t.replace("Z", "+00:00"))
                                for t in (gone["erased_at"], erased.json["erased_at"]))  # fmt: skip
    assert abs((receipt_at - tombstone_at).total_seconds()) < 5
    assert gone["profile"] is None and gone["decisions"] == gone["outcomes"] == []
    assert gone["events_applied"] == [] and not any(gone["stored"].values())
    assert len(await keys_tagged(pipeline.services.redis_url, gone["subject"])) == 1
