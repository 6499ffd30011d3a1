"""What POST /v1/events and POST /v1/outcomes refuse, on real Redis and Kafka: items of an
erased customer are not written to Kafka (no record naming them is made after their
erasure), also while Redis cannot say who is erased but for the erasures the API saw; and
touchpoints refused as invalid (a 422) are counted as the workers count those they read.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from feature_store import FeatureStore, StoreConfig
from streams.services import LocalRedis
from tests.integration.conftest import SECRET, Pipeline
from tests.integration.test_api_support import (
    DEV_AUTH,
    call,
    event,
    iso,
    metric_total,
    outcome,
    read_to_end,
)

pytestmark = pytest.mark.integration

EVENTS = "moments_events_total"
ERASED = "moments_ingest_erased_total"
UNCHECKED = "moments_ingest_unchecked_total"


async def erase_in_store(redis_url: str, pipeline: Pipeline, customer_id: str) -> None:
    """Erased with no erasure this API process saw (long ago, or before it started)."""
    store = FeatureStore.from_url(
        redis_url, StoreConfig(secret=SECRET.encode(), prefix=pipeline.prefix.rstrip("-"))
    )
    try:
        await store.erase(customer_id)
    finally:
        await store.close()


async def written_since(pipeline: Pipeline, topic: str, since_ms: int) -> list[bytes]:
    """The keys (customer ids) of the records written to ``topic`` since ``since_ms``."""
    records = await read_to_end(pipeline.services.kafka_bootstrap, pipeline.topic(topic))
    return [r.key for r in records if r.timestamp >= since_ms]


async def test_an_erased_customers_events_and_outcomes_are_not_written_to_kafka(
    pipeline: Pipeline,
) -> None:
    """One customer erased through the API, one erased in Redis only (the tombstone is
    read, not only the erasures the process remembers); a third, not erased, sent in the
    same requests, is written as before."""
    tag = uuid.uuid4().hex[:8]
    erased_here, erased_before, kept = f"gone-{tag}", f"old-{tag}", f"here-{tag}"
    api = pipeline.start_api(MOMENTS_CONTROL_PERCENT="0")
    await erase_in_store(pipeline.services.redis_url, pipeline, erased_before)
    deleted = await call("DELETE", f"{api.url}/v1/customers/{erased_here}", headers=DEV_AUTH)
    assert deleted.status == 200 and deleted.json["blocked"] is True, deleted
    since_ms = int(time.time() * 1000)

    sent = [
        event("purchase", erased_here, f"p-{tag}", minutes_ago=0, amount=999.0),
        event("web_click", kept, f"w-{tag}", minutes_ago=0),
        event("web_click", erased_before, f"o-{tag}", minutes_ago=0),
        event("email", erased_here, f"m-{tag}", minutes_ago=0),
    ]
    events = await call("POST", f"{api.url}/v1/events", headers=DEV_AUTH, body=sent)
    decisions = {c: str(uuid.uuid4()) for c in (erased_here, kept, erased_before)}
    outcomes = await call("POST", f"{api.url}/v1/outcomes", headers=DEV_AUTH,
                          body=[outcome(d, c, "free-shipping", "accepted")
                                for c, d in decisions.items()])  # fmt: skip

    erased_keys = {erased_here.encode(), erased_before.encode()}
    for topic in ("touchpoints", "offer-outcomes"):
        keys = await written_since(pipeline, topic, since_ms)
        assert not erased_keys & set(keys), f"{topic} names an erased customer: {keys}"
        assert kept.encode() in keys, (topic, keys)
    assert events.status == 202, events
    # answered as if none were erased: the answer tells no sender who was (a web page's
    # key may post outcomes)
    assert events.json == {"accepted": 4, "event_ids": [e["event_id"] for e in sent]}
    assert outcomes.status == 202, outcomes
    assert outcomes.json == {"accepted": 3, "decision_ids": list(decisions.values())}
    assert metric_total(api, ERASED, route="/v1/events") == 3
    assert metric_total(api, ERASED, route="/v1/outcomes") == 2
    assert metric_total(api, EVENTS, type="purchase", result="erased") == 1
    assert metric_total(api, EVENTS, type="web_click", result="erased") == 1
    assert metric_total(api, EVENTS, type="email", result="erased") == 1
    assert metric_total(api, "moments_outcomes_accepted_total") == 1
    assert metric_total(api, UNCHECKED) == 0

    # all of a request's items erased: a 202 that writes nothing
    only = await call("POST", f"{api.url}/v1/events", headers=DEV_AUTH,
                      body=event("call", erased_before, f"c-{tag}", minutes_ago=0))  # fmt: skip
    assert only.status == 202 and only.json == {"accepted": 1, "event_ids": [f"c-{tag}"]}
    assert not erased_keys & set(await written_since(pipeline, "touchpoints", since_ms))

    # an item too large for Kafka is a 413 whoever it is about: the answer tells no one
    # who was erased
    huge = "x" * 900_000
    for customer in (kept, erased_here):
        big = outcome(str(uuid.uuid4()), customer, "free-shipping") | {"note": huge}
        refused = await call("POST", f"{api.url}/v1/outcomes", headers=DEV_AUTH, body=big)
        assert refused.status == 413 and refused.json["error"] == "record_too_large", refused
    # a withdrawal is written all the same: the worker keeps it beside the tombstone
    since_ms = int(time.time() * 1000)
    stop = event("consent", erased_here, f"stop-{tag}", minutes_ago=0, channel="sms",
                 granted=False)  # fmt: skip
    taken = await call("POST", f"{api.url}/v1/events", headers=DEV_AUTH, body=stop)
    assert taken.status == 202 and taken.json == {"accepted": 1, "event_ids": [f"stop-{tag}"]}
    assert await written_since(pipeline, "touchpoints", since_ms) == [erased_here.encode()]


async def test_while_redis_cannot_say_events_are_written_unchecked_but_erasures_seen(
    pipeline: Pipeline, private_redis: LocalRedis
) -> None:
    """The ingest stays available while Redis is stalled or down: what the process saw
    erased is still left out, the rest is written (the workers refuse an erased
    customer's records) and counted unchecked, without waiting on Redis."""
    tag = uuid.uuid4().hex[:8]
    gone, here, stalled = f"gone-{tag}", f"here-{tag}", f"stalled-{tag}"
    api = pipeline.start_api(redis_url=private_redis.url, MOMENTS_CONTROL_PERCENT="0")
    deleted = await call("DELETE", f"{api.url}/v1/customers/{gone}", headers=DEV_AUTH)
    assert deleted.status == 200, deleted
    since_ms = int(time.time() * 1000)

    admin = aioredis.Redis.from_url(private_redis.url)
    try:
        await admin.execute_command("CLIENT", "PAUSE", "5000", "ALL")  # Redis stalls
    finally:
        await admin.aclose()
    started = time.monotonic()
    reply = await call("POST", f"{api.url}/v1/events", headers=DEV_AUTH,
                       body=[event("web_click", stalled, f"s-{tag}", minutes_ago=0),
                             event("web_click", gone, f"g1-{tag}", minutes_ago=0)])  # fmt: skip
    assert time.monotonic() - started < 2.0, "the ingest waited on a stalled Redis"
    assert reply.status == 202, reply
    assert reply.json == {"accepted": 2, "event_ids": [f"s-{tag}", f"g1-{tag}"]}
    # a check that ran out of time pauses the next ones: they do not each wait 0.25 s
    started = time.monotonic()
    for n in range(8):
        click = event("web_click", stalled, f"s{n}-{tag}", minutes_ago=0)
        more = await call("POST", f"{api.url}/v1/events", headers=DEV_AUTH, body=click)
        assert more.status == 202, more
    assert time.monotonic() - started < 1.0, "each request waited on the stalled Redis"

    private_redis.stop()
    await asyncio.sleep(0.5)
    reply = await call("POST", f"{api.url}/v1/events", headers=DEV_AUTH,
                       body=[event("web_click", here, f"h-{tag}", minutes_ago=0),
                             event("web_click", gone, f"g2-{tag}", minutes_ago=0)])  # fmt: skip
    assert reply.status == 202, reply
    assert reply.json == {"accepted": 2, "event_ids": [f"h-{tag}", f"g2-{tag}"]}
    answer = await call("POST", f"{api.url}/v1/outcomes", headers=DEV_AUTH,
                        body=outcome(str(uuid.uuid4()), gone, "free-shipping"))  # fmt: skip
    assert answer.status == 202 and answer.json["accepted"] == 1, answer

    keys = await written_since(pipeline, "touchpoints", since_ms)
    assert len(keys) == 10 and set(keys) == {stalled.encode(), here.encode()}
    assert gone.encode() not in await written_since(pipeline, "offer-outcomes", since_ms)
    assert metric_total(api, UNCHECKED, route="/v1/events") == 10
    assert metric_total(api, ERASED, route="/v1/events") == 2
    assert metric_total(api, ERASED, route="/v1/outcomes") == 1


async def test_events_refused_with_a_422_are_counted_invalid_under_their_type(
    pipeline: Pipeline,
) -> None:
    """A producer sending bad events over HTTP shows on the invalid-event rate, as one
    writing them to Kafka does: each refused event under the type it names when that is
    one Moments knows, else ``unknown``; the valid events of a refused request were not
    taken, and are counted once they are."""
    tag = uuid.uuid4().hex[:8]
    api = pipeline.start_api()
    ahead = iso(datetime.now(UTC) + timedelta(hours=2))
    bad_call = event("call", f"c-{tag}", f"c-{tag}")
    del bad_call["status"]
    sent = [
        event("web_click", f"w-{tag}", f"w-{tag}"),  # valid
        bad_call,  # a required field missing
        event("purchase", f"p-{tag}", f"p-{tag}") | {"ts": ahead},  # dated too far ahead
        {"type": "fax", "event_id": f"f-{tag}", "customer_id": "x"},  # no such type
        "not an object",
    ]
    reply = await call("POST", f"{api.url}/v1/events", headers=DEV_AUTH, body=sent)
    assert reply.status == 422 and reply.json["error"] == "invalid_events", reply
    assert [d["index"] for d in reply.json["details"]] == [1, 2, 3, 4]
    assert metric_total(api, EVENTS, type="call", result="invalid") == 1
    assert metric_total(api, EVENTS, type="purchase", result="invalid") == 1
    assert metric_total(api, EVENTS, type="unknown", result="invalid") == 2
    assert metric_total(api, EVENTS, type="web_click") == 0  # not taken: not counted
    assert metric_total(api, EVENTS, result="invalid") == 4


async def test_an_item_naming_a_key_twice_is_refused_and_nothing_is_written(
    pipeline: Pipeline,
) -> None:
    """An item naming ``customer_id`` twice went to Kafka as sent, keyed by the last id
    (the one msgspec takes) with both in its value: the first could hold what the id rules
    refuse, or an erased customer's id. A consent naming ``granted`` twice was a grant to
    Moments and a withdrawal to a reader taking the first. Each is a 422 naming the item
    and the key, for events and outcomes alike."""
    tag = uuid.uuid4().hex[:8]
    api = pipeline.start_api()
    since_ms = int(time.time() * 1000)
    click = json.dumps(event("web_click", "victim\u0000\u202e", f"w-{tag}", minutes_ago=0))
    click = click[:-1] + f', "customer_id": "decoy-{tag}"}}'
    consent = json.dumps(event("consent", f"c-{tag}", f"k-{tag}", minutes_ago=0,
                               granted=False))[:-1] + ', "granted": true}'  # fmt: skip
    good = json.dumps(event("web_click", f"here-{tag}", f"h-{tag}", minutes_ago=0))
    body = f"[{good}, {click}, {consent}]".encode()
    reply = await call("POST", f"{api.url}/v1/events", headers=DEV_AUTH, data=body)
    assert reply.status == 422 and reply.json["error"] == "invalid_events", reply
    assert [(d["index"], d["reason"].rsplit(" - at ", 1)[1]) for d in reply.json["details"]] == [
        (1, "`$.customer_id`"),
        (2, "`$.granted`"),
    ]
    assert all("key given twice" in d["reason"] for d in reply.json["details"])
    assert metric_total(api, EVENTS, type="web_click", result="invalid") == 1
    assert metric_total(api, EVENTS, type="consent", result="invalid") == 1

    sent = json.dumps(outcome(str(uuid.uuid4()), "c\u0000x", "free-shipping"))
    sent = sent[:-1] + f', "customer_id": "decoy-{tag}"}}'
    answer = await call("POST", f"{api.url}/v1/outcomes", headers=DEV_AUTH, data=sent.encode())
    assert answer.status == 422 and answer.json["error"] == "invalid_outcomes", answer
    (refused,) = answer.json["details"]
    assert refused["index"] == 0 and refused["reason"].endswith("- at `$.customer_id`")
    for topic in ("touchpoints", "offer-outcomes"):
        assert await written_since(pipeline, topic, since_ms) == [], topic
