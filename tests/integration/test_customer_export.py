"""GET /v1/customers/{id}/export: a customer's access request, on real Kafka and Redis.

A worker applies the customer's events (a consent withdrawal among them) and decides;
the API makes more decisions than the profile lists, each a contact; the learner claims
an outcome. The export holds all of it, as the test finds it independently in Redis (every
key carrying the customer's hash tag) and on the topics; after an erasure it holds only
when the customer was erased.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio as aioredis

from feature_store.keys import CustomerKeys, KeySet
from tests.integration.conftest import SECRET, Pipeline
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

# the export's "stored" section that shows each hash of the customer as it is
STORED_HASHES = {"profile": "profile", "windows": "windows", "contacts": "contacts",
                 "optouts": "optouts"}  # fmt: skip


def ms_iso(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


async def left_out_of(
    body: dict[str, Any], keys: KeySet, redis_url: str
) -> tuple[list[str], set[str]]:
    """Each key of the customer in Redis (found by a SCAN for their hash tag) that the
    export leaves out, or shows otherwise than Redis holds it; and the kinds of key found."""
    kinds = {getattr(keys, f.name): f.name for f in dataclasses.fields(KeySet) if f.name != "tag"}
    decisions = {d["decision_id"]: d for d in body["decisions"]}
    contexts = {keys.context(decision_id): d for decision_id, d in decisions.items()}
    stored = body["stored"]
    # a shown offer's outcomes are claimed together, under "<decision>:<offer>"
    claimed = {":".join(p for p in (o["decision_id"], o["offer_id"]) if p)
               for o in body["outcomes"]}  # fmt: skip
    claimed_at = {":".join(p for p in (o["decision_id"], o["offer_id"]) if p):
                  o["claimed_at"] for o in body["outcomes"]}  # fmt: skip
    faults, found = [], set()
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        for key in await keys_tagged(redis_url, keys.tag):
            kind = kinds.get(key)
            found.add("context" if key in contexts else kind or key)
            if key in contexts:
                held = json.loads(await client.get(key) or "null")
                # kept without the customer's id, which the export puts back
                shown = isinstance(held, dict) and "customer_id" not in held
                shown = shown and {**held, "customer_id": body["customer_id"]} == contexts[key]
            elif kind in STORED_HASHES:
                held = await client.hgetall(key)
                shown = bool(held) and stored.get(STORED_HASHES[kind]) == held
            elif kind == "recent":
                held = await client.zrange(key, 0, -1, desc=True)
                shown = bool(held) and stored.get("recent_touchpoints") == held
            elif kind == "seen":
                held = set(await client.zrange(key, 0, -1))
                shown = bool(held) and held == {e["id"] for e in body["events_applied"]}
            elif kind in ("decisions", "decision_index"):
                held = set(await client.zrange(key, 0, -1))
                listed = {d["decision_id"] for d in body["decision_ids"]}
                shown = bool(held) and held <= set(decisions) and held <= listed
            elif kind == "outcomes":
                held = set(await client.hkeys(key))
                shown = bool(held) and held == claimed
            elif kind == "outcome_times":
                times = await client.zrange(key, 0, -1, withscores=True)
                held = {member: ms_iso(score) for member, score in times}
                shown = bool(held) and held == claimed_at
            else:  # a kind of key the export does not account for
                held, shown = await client.type(key), False
            if not shown:
                faults.append(f"{kind or key}: {held!r}")
    finally:
        await client.aclose()
    return faults, found


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
        event("consent", customer, f"{customer}-e4", minutes_ago=8, channel="sms", granted=False),
        event("web_click", bystander, f"{bystander}-e1", minutes_ago=5),
    ]
    mine = [e for e in events if e["customer_id"] == customer]
    posted = await call("POST", f"{api.url}/v1/events", headers=DEV_AUTH, body=events)
    assert posted.status == 202, posted
    export_url = f"{api.url}/v1/customers/{customer}/export"

    async def applied() -> bool:
        reply = await call("GET", f"{api.url}/v1/customers/{customer}", headers=DEV_AUTH)
        return reply.status == 200 and reply.json["features"]["events"] == len(mine)

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
    assert profile["features"]["events"] == len(mine) and profile["customer_id"] == customer
    ids = {d["decision_id"] for d in body["decisions"]}
    assert {a["decision_id"] for a in answers} <= ids  # the 22 asked, and the worker's two
    assert all(d["customer_id"] == customer for d in body["decisions"])
    assert [{**o, "claimed_at": None} for o in body["outcomes"]] == [
        {"decision_id": with_offer["decision_id"], "offer_id": with_offer["offers"][0]["offer_id"],
         "outcome": "clicked", "claimed_at": None}]  # fmt: skip
    assert body["outcomes"][0]["claimed_at"] is not None
    facts = {e["id"] for e in body["events_applied"]}
    assert {f"t:{e['event_id']}" for e in mine} <= facts
    assert not any(bystander in json.dumps(part) for part in body.values())
    stored = body["stored"]
    assert (
        stored["profile"] and stored["windows"] and len(stored["recent_touchpoints"]) == len(mine)
    )
    # the withdrawal, kept apart from the profile, and the offers shown to the customer
    assert stored["optouts"]["consent:sms"] == "0" and stored["contacts"]
    keys = CustomerKeys(SECRET.encode(), pipeline.prefix.rstrip("-")).for_customer(customer)
    faults, found = await left_out_of(body, keys, pipeline.services.redis_url)
    assert faults == []
    # every kind of key the store keeps about a customer was there, and was checked
    data_kinds = {f.name for f in dataclasses.fields(KeySet)} - {
        "tag", "tombstone", "erasure", "suppression"}  # fmt: skip
    assert found == data_kinds | {"context"}, found
    topics = {t["topic"] for t in body["kept_in_topics"]}
    assert {pipeline.topic("touchpoints"), pipeline.topic("next-best-offers"),
            pipeline.topic("risk-examples")} <= topics  # fmt: skip

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
    assert set(gone["stored"]) == set(stored)  # every section, each empty
    # the tombstone, what was removed, and the withdrawal kept, by name: still honoured
    assert len(await keys_tagged(pipeline.services.redis_url, gone["subject"])) == 3
    assert gone["withdrawals_kept"] == ["consent:sms"] and body["withdrawals_kept"] == []
