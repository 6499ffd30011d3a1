"""DELETE /v1/customers/{id}: erasure everywhere Moments keeps the customer, for good.

Checked from outside: a SCAN over the whole Redis for the customer's keyed-hash tag, the
``customer-erasures`` topic read with a plain consumer, and a replay of the customer's
old events, produced again to ``touchpoints`` while a real worker runs.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from agents.control_group import ControlGroup
from feature_store.keys import CustomerKeys
from streams.services import LocalRedis
from streams.settings import Settings
from tests.integration.conftest import SECRET, Pipeline, consume_all
from tests.integration.test_api_support import (
    DEV_AUTH,
    assert_error,
    call,
    event,
    eventually,
    keys_tagged,
    left_by_erasure,
    metric_total,
    read_to_end,
)
from tests.integration.test_touchpoints_pipeline import produce

pytestmark = pytest.mark.integration


def tombstone_of(pipeline: Pipeline, customer_id: str) -> str:
    """The key that keeps the customer erased, named as this deployment's store names it."""
    return (
        CustomerKeys(SECRET.encode(), pipeline.prefix.rstrip("-"))
        .for_customer(customer_id)
        .tombstone
    )


# How long an erased customer stays blocked: well beyond what any topic keeps of their
# events, so that no replay or late delivery brings them back (written out here, not read
# from the store's settings, so that a shorter lifetime there is noticed).
ERASED_FOR_S = 400 * 86400


async def assert_kept_for_the_tombstone_lifetime(redis_url: str, tombstone: str) -> None:
    """The tombstone expires only after the tombstone lifetime, counted from the erasure."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        ttl = await client.ttl(tombstone)
    finally:
        await client.aclose()
    assert ERASED_FOR_S - 600 <= ttl <= ERASED_FOR_S, ttl


def history(customer_id: str) -> list[dict[str, object]]:
    tag = customer_id
    return [
        event("web_click", customer_id, f"{tag}-e1", minutes_ago=50, category="home"),
        event("purchase", customer_id, f"{tag}-e2", minutes_ago=40, amount=80.0),
        event("email", customer_id, f"{tag}-e3", minutes_ago=30, action="opened"),
        event("survey", customer_id, f"{tag}-e4", minutes_ago=20, score=3),
        event("consent", customer_id, f"{tag}-e5", minutes_ago=10, channel="sms", granted=False),
    ]


async def test_erasure_removes_every_key_blocks_replays_and_records_the_erasure(
    pipeline: Pipeline,
) -> None:
    bootstrap, redis_url = pipeline.services.kafka_bootstrap, pipeline.services.redis_url
    # Unique per run: the tag is the same for every deployment sharing the secret.
    gone, kept = f"{pipeline.prefix}erase-me", f"{pipeline.prefix}keep-me"
    worker = pipeline.start_worker()
    api = pipeline.start_api(MOMENTS_CONTROL_PERCENT="0", MOMENTS_API_BUDGET_MS="5000")
    store = pipeline.store()
    tag, kept_tag = store.pseudonym(gone), store.pseudonym(kept)
    await store.close()
    assert gone not in tag
    gone_events, kept_events = history(gone), history(kept)
    posted = await call("POST", f"{api.url}/v1/events", headers=DEV_AUTH, body=gone_events)
    assert posted.status == 202, posted
    posted = await call("POST", f"{api.url}/v1/events", headers=DEV_AUTH, body=kept_events)
    assert posted.status == 202, posted

    async def profile_done(customer_id: str) -> object:
        reply = await call("GET", f"{api.url}/v1/customers/{customer_id}", headers=DEV_AUTH)
        if reply.status != 200:
            return None
        body = reply.json
        # five events, two of them decision moments (the web click, the email opened)
        done = body["features"]["events"] == 5 and len(body["recent_decisions"]) == 2
        return body if done else None

    await eventually(lambda: profile_done(gone), "the worker to process the customer")
    await eventually(lambda: profile_done(kept), "the worker to process the bystander")
    # More decisions than the profile lists (20): every one's context is kept for
    # learning, and every one must go.
    asked = 25
    for _ in range(asked):
        shown = await call("GET", f"{api.url}/v1/customers/{gone}/recommendations",
                           headers=DEV_AUTH)  # fmt: skip
        assert shown.status == 200, shown

    async def decisions_of_gone() -> object:
        records = await read_to_end(bootstrap, pipeline.topic("next-best-offers"))
        mine = [r for r in records if r.key == gone.encode()]
        return mine if len(mine) >= 2 + asked else None

    # the API publishes its decision after answering (within MOMENTS_API_PUBLISH_LINGER_MS)
    decisions_before = await eventually(decisions_of_gone, "the API's decisions on Kafka")
    assert isinstance(decisions_before, list)
    assert len(decisions_before) == 2 + asked  # the worker's two and the API's

    before = await keys_tagged(redis_url, tag)
    kinds = Counter(k.rsplit("}", 1)[1].split(":")[1] for k in before)
    # the withdrawals too: kept apart from the profile, without expiry
    assert {"p", "w", "seen", "recent", "c", "dec", "ctx", "ctxidx", "optout"} <= set(kinds), before
    assert kinds["ctx"] == 2 + asked, kinds
    kept_before = await keys_tagged(redis_url, kept_tag)

    asked_at = datetime.now(UTC)
    reply = await call("DELETE", f"{api.url}/v1/customers/{gone}", headers=DEV_AUTH)
    answered_at = datetime.now(UTC)
    assert reply.status == 200, reply
    receipt = reply.json
    assert receipt["subject"] == tag
    assert receipt["keys_removed"] == len(before), (receipt, before)
    assert set(receipt["erased"]) == {
        "profile", "windows", "seen", "recent", "contacts", "decisions", "decision_index",
        "optouts", "decision_contexts",
    }  # fmt: skip
    assert receipt["blocked"] is True
    assert receipt["withdrawals_kept"] == ["consent:sms"]  # still honoured
    erased_at = datetime.fromisoformat(receipt["erased_at"].replace("Z", "+00:00"))
    # when it was erased, as a data protection officer keeps it (to the millisecond)
    assert asked_at - timedelta(milliseconds=1) <= erased_at <= answered_at, erased_at
    record_at = receipt["erasure_record"]
    assert record_at["topic"] == pipeline.topic("customer-erasures")
    assert record_at["partition"] >= 0 and record_at["offset"] >= 0
    # what the erasure does not reach, named as this deployment names its topics
    kept_in = {entry["topic"] for entry in receipt["kept_in_topics"]}
    assert {pipeline.topic("touchpoints"), pipeline.topic("next-best-offers")} <= kept_in
    assert gone not in json.dumps({k: v for k, v in receipt.items() if k != "erasure_record"})

    # Nothing of the customer is left in Redis but the tombstone; the bystander is intact.
    tombstone = tombstone_of(pipeline, gone)
    assert await keys_tagged(redis_url, tag) == left_by_erasure(tombstone, withdrew=True)
    await assert_kept_for_the_tombstone_lifetime(redis_url, tombstone)
    assert await keys_tagged(redis_url, kept_tag) == kept_before
    assert (await call("GET", f"{api.url}/v1/customers/{kept}", headers=DEV_AUTH)).status == 200
    assert_error(await call("GET", f"{api.url}/v1/customers/{gone}", headers=DEV_AUTH), 404)

    # The erasure is recorded on the prefixed customer-erasures topic, where the receipt says.
    (record,) = await consume_all(bootstrap, pipeline.topic("customer-erasures"), 1)
    assert (record.partition, record.offset) == (record_at["partition"], record_at["offset"])  # type: ignore[attr-defined]
    assert record.key == gone.encode()  # type: ignore[attr-defined]
    logged = json.loads(record.value)  # type: ignore[attr-defined]
    assert logged["subject"] == tag and logged["keys_removed"] == receipt["keys_removed"]
    assert logged["withdrawals"] == ["consent:sms"]  # for a rebuild to keep them again

    # A replay of the old events, with the worker running, does not bring them back.
    replay = [(gone.encode(), json.dumps(e).encode()) for e in gone_events]
    await produce(bootstrap, pipeline.topic("touchpoints"), replay)

    async def replay_refused() -> bool:
        return metric_total(worker, "moments_events_total", result="erased") >= len(replay)

    await eventually(replay_refused, "the worker to refuse the replayed events")
    assert metric_total(worker, "moments_events_total", result="erased") == len(replay)
    assert await keys_tagged(redis_url, tag) == left_by_erasure(tombstone, withdrew=True)
    assert_error(await call("GET", f"{api.url}/v1/customers/{gone}", headers=DEV_AUTH), 404)

    # Asked for offers, the API answers as for someone it knows nothing of (the answer
    # does not tell of the erasure) and keeps, counts and sends nothing.
    control = ControlGroup(Settings().control_salt, Settings().control_percent)
    strangers = (c for n in itertools.count() if control.contains(
        c := f"{pipeline.prefix}stranger-{n}") == control.contains(gone))  # fmt: skip
    # The bandit explores one decision in twenty, drawn from the decision id: compare
    # greedy answers, asking again (a new stranger: one shown offers is in cooldown)
    # while either one explored.
    for stranger in itertools.islice(strangers, 10):
        answers = []
        for customer in (gone, stranger):
            url = f"{api.url}/v1/customers/{customer}/recommendations"
            answers.append((await call("GET", url, headers=DEV_AUTH)).json)
        if not any("exploration" in a["reasons"] for a in answers):
            break
    differ = ("decision_id", "customer_id", "ts", "trigger_ts", "trigger_event_id")
    alike = [{k: v for k, v in a.items() if k not in differ} for a in answers]
    for answer in alike:  # a score is the bound's in the decisions drawn optimistic (a
        # fifth, by the decision id), else the estimate's: the same offers either way
        answer["offers"] = [{k: v for k, v in o.items() if k != "score"} for o in answer["offers"]]
    assert alike[0] == alike[1], answers
    assert answers[0]["fallback"] is False, answers[0]
    assert await keys_tagged(redis_url, tag) == left_by_erasure(tombstone, withdrew=True)
    # The API publishes a decision after answering, up to its linger later: read once the
    # last stranger's (asked after the erased customer) is on the topic, when one about
    # the erased customer would be there too.
    last_asked = answers[1]["decision_id"]

    async def published_through_the_last_asked() -> object:
        records = await read_to_end(bootstrap, pipeline.topic("next-best-offers"))
        published = {json.loads(r.value).get("decision_id") for r in records}
        return records if last_asked in published else None

    published = await eventually(published_through_the_last_asked, "the last decision on Kafka")
    assert isinstance(published, list)
    decisions_after = [r for r in published if r.key == gone.encode()]
    assert len(decisions_after) == len(decisions_before), "no decision about an erased customer"

    # Beside the tombstone, only which keys were removed (a flag per kind, a count), and
    # the withdrawals kept.
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        told = await client.get(left_by_erasure(tombstone)[1])
        withdrawals = await client.smembers(left_by_erasure(tombstone, withdrew=True)[2])
    finally:
        await client.aclose()
    assert told is not None and re.fullmatch(r"[01]+\|\d+", told), told
    assert withdrawals == {"consent:sms"}  # and the withdrawals, by name alone
    # Asked again (as a client told to retry after a 503 would), the receipt still tells
    # what erasing the customer removed, and since when they are erased.
    again = await call("DELETE", f"{api.url}/v1/customers/{gone}", headers=DEV_AUTH)
    assert again.status == 200, again
    same = ("subject", "erased_at", "keys_removed", "erased", "blocked", "withdrawals_kept")
    assert {k: again.json[k] for k in same} == {k: receipt[k] for k in same}
    records = await consume_all(bootstrap, pipeline.topic("customer-erasures"), 2)
    assert [json.loads(r.value)["keys_removed"] for r in records] == [len(before)] * 2  # type: ignore[attr-defined]


async def test_erasing_an_unknown_customer_still_blocks_and_records(pipeline: Pipeline) -> None:
    api = pipeline.start_api()
    store = pipeline.store()
    customer = f"{pipeline.prefix}never-seen"
    tag = store.pseudonym(customer)
    await store.close()
    reply = await call("DELETE", f"{api.url}/v1/customers/{customer}", headers=DEV_AUTH)
    assert reply.status == 200, reply
    receipt = reply.json
    assert receipt["subject"] == tag and receipt["keys_removed"] == 0 and receipt["erased"] == []
    assert receipt["blocked"] is True
    tombstone = tombstone_of(pipeline, customer)
    assert await keys_tagged(pipeline.services.redis_url, tag) == left_by_erasure(tombstone)
    await assert_kept_for_the_tombstone_lifetime(pipeline.services.redis_url, tombstone)
    (record,) = await consume_all(
        pipeline.services.kafka_bootstrap, pipeline.topic("customer-erasures"), 1
    )
    assert json.loads(record.value)["subject"] == tag  # type: ignore[attr-defined]


async def test_an_erasure_waits_for_the_replicas_it_is_told_to(
    pipeline: Pipeline, private_redis: LocalRedis, tmp_path: Path
) -> None:
    """With MOMENTS_ERASURE_REPLICAS, the receipt comes once a replica of Redis has the
    erasure too (a failover to one that had not would bring the customer back); with the
    replica gone, a 503 to retry, once the erasure is on the primary and recorded."""
    of_primary = ["--replicaof", "127.0.0.1", str(private_redis.port)]
    replica = LocalRedis(tmp_path / "replica", appendonly=False, extra_args=of_primary)
    replica.start()
    primary = aioredis.Redis.from_url(private_redis.url, decode_responses=True)
    try:

        async def replica_in_sync() -> bool:
            info = await primary.info("replication")
            return int(info["connected_slaves"]) == 1 and "online" in str(info["slave0"])

        await eventually(replica_in_sync, "the replica to join")
        api = pipeline.start_api(redis_url=private_redis.url, MOMENTS_ERASURE_REPLICAS="1",
                                 MOMENTS_ERASURE_REPLICA_WAIT_MS="800")  # fmt: skip
        store = pipeline.store()  # names keys as the API does
        confirmed, unconfirmed = f"{pipeline.prefix}replicated", f"{pipeline.prefix}primary-only"
        for customer in (confirmed, unconfirmed):
            tag = store.pseudonym(customer)
            # no worker runs here: the API's own write (a decision) makes the keys
            shown = await call("GET", f"{api.url}/v1/customers/{customer}/recommendations",
                               headers=DEV_AUTH)  # fmt: skip
            assert shown.status == 200, shown
            assert await keys_tagged(private_redis.url, tag)

        reply = await call("DELETE", f"{api.url}/v1/customers/{confirmed}", headers=DEV_AUTH)
        assert reply.status == 200, reply
        assert reply.json["replicas_confirmed"] == 1
        # on the replica already, with no time given it: WAIT answered once it had it
        tag = store.pseudonym(confirmed)
        tombstone = tombstone_of(pipeline, confirmed)
        assert await keys_tagged(replica.url, tag) == left_by_erasure(tombstone)

        replica.stop()
        started = time.monotonic()
        reply = await call("DELETE", f"{api.url}/v1/customers/{unconfirmed}", headers=DEV_AUTH)
        body = assert_error(reply, 503, "replicas_unconfirmed")
        assert reply.headers["Retry-After"] == "1" and body["details"] == [{"retry_after_s": 1}]
        assert "0 of the 1 replicas" in body["message"] and unconfirmed not in body["message"]
        assert time.monotonic() - started >= 0.7  # it waited for the replica, in vain
        # erased on the primary all the same, and recorded for replays
        tag = store.pseudonym(unconfirmed)
        tombstone = tombstone_of(pipeline, unconfirmed)
        assert await keys_tagged(private_redis.url, tag) == left_by_erasure(tombstone)
        records = await read_to_end(pipeline.services.kafka_bootstrap,
                                    pipeline.topic("customer-erasures"))  # fmt: skip
        assert unconfirmed.encode() in [r.key for r in records]
        await store.close()
    finally:
        await primary.aclose()
        replica.stop()
