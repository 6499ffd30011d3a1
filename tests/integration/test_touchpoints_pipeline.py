"""End to end on real Kafka and Redis: a plain aiokafka producer feeds a Moments worker."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from feature_store.facts import BUSINESS_EMAIL_ACTIONS
from schemas.touchpoints import EVENT_TYPES
from streams.topics import keyed_partition
from tests.integration.conftest import Pipeline, Worker, consume_all
from tests.integration.test_api_support import once_counted

pytestmark = pytest.mark.integration

CUSTOMERS = [f"it-cust-{i:03d}" for i in range(40)]


def good_events(n: int, seed: int = 11) -> list[dict[str, Any]]:
    """Contract-shaped JSON objects, written here independently of Moments' schemas."""
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(hours=2)
    events = []
    for i in range(n):
        kind = rng.choice(
            ["web_click"] * 4 + ["call", "email", "social_mention", "purchase", "survey", "consent"]
        )
        base = {
            "type": kind,
            "event_id": f"it-{seed}-{i:05d}",
            "customer_id": rng.choice(CUSTOMERS),
            "ts": (start + timedelta(seconds=i)).isoformat().replace("+00:00", "Z"),
        }
        if kind == "web_click":
            base |= {"page": "/products/books/1", "category": rng.choice(["books", "home"])}
        elif kind == "call":
            base |= {"status": "started", "direction": "inbound", "reason": "support"}
        elif kind == "email":
            base |= {"action": rng.choice(["sent", "opened", "clicked"])}
        elif kind == "social_mention":
            base |= {"platform": "x", "sentiment": rng.uniform(-1, 1), "reach": rng.randint(0, 999)}
        elif kind == "purchase":
            base |= {
                "order_id": f"o{i}",
                "amount": round(rng.uniform(1, 300), 2),
                "currency": "EUR",
            }
        elif kind == "survey":
            base |= {"score": rng.randint(0, 10), "scale": "nps"}
        else:
            base |= {"channel": "email", "granted": rng.random() < 0.7}
        events.append(base)
    return events


CHANNEL = {"web_click": "web", "call": "call", "email": "email"}


def is_moment(event: dict[str, Any]) -> bool:
    """A web click, an inbound call that starts, or an email opened."""
    return (
        event["type"] == "web_click"
        or (event["type"] == "call" and event["status"] == "started"
            and event["direction"] == "inbound")
        or (event["type"] == "email" and event["action"] == "opened")
    )  # fmt: skip


def named_type(value: bytes) -> str:
    """The event type a record names, if Moments knows it; else "unknown"."""
    try:
        found = json.loads(value)
    except ValueError:
        return "unknown"
    kind = found.get("type") if isinstance(found, dict) else None
    return kind if kind in EVENT_TYPES else "unknown"


def malformed_records(n: int) -> list[tuple[bytes, str]]:
    """Bad records and the words their DLQ reason must contain."""
    ts = "2026-11-23T14:05:00Z"
    common = {"event_id": "x", "customer_id": "c", "ts": ts}
    click = {"type": "web_click", **common, "page": "/"}
    bad: list[tuple[dict[str, Any] | bytes, str]] = [
        (b"{not json", "malformed JSON"),
        (b"", "malformed JSON"),
        (b"[1, 2, 3]", "Expected `object`"),
        ({**click, "ts": "2099-01-01T00:00:00Z"}, "in the future"),
        ({"type": "teleport", **common}, "$.type"),
        ({k: v for k, v in click.items() if k != "event_id"}, "event_id"),
        ({**click, "ts": "2026-11-23T14:05:00"}, "$.ts"),
        ({"type": "social_mention", **common, "platform": "x", "sentiment": 3}, "$.sentiment"),
        (
            {"type": "purchase", **common, "order_id": "o", "amount": -5, "currency": "EUR"},
            "$.amount",
        ),
        ({"type": "survey", **common, "score": 9, "scale": "csat5"}, "outside 1..5"),
        (  # would overflow the spend counter half-way through the update
            {"type": "purchase", **common, "order_id": "o", "amount": 1e20, "currency": "EUR"},
            "$.amount",
        ),
        (
            {
                "type": "call",
                **common,
                "status": "ringing",
                "direction": "inbound",
                "reason": "other",
            },
            "$.status",
        ),
    ]
    # a key given twice: Moments would take the last id, a reader of the topic the first
    twice = json.dumps({**click, "customer_id": "victim"})[:-1] + ', "customer_id": "decoy"}'
    bad.append((twice.encode(), "which one counts) - at `$.customer_id`"))
    encoded = [(v if isinstance(v, bytes) else json.dumps(v).encode(), hint) for v, hint in bad]
    return [encoded[i % len(encoded)] for i in range(n)]


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in records:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


def expected_counters(events: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    state: dict[str, dict[str, int]] = defaultdict(Counter)
    for e in events:
        s = state[e["customer_id"]]
        if e["type"] == "email" and e["action"] in BUSINESS_EMAIL_ACTIONS:
            s["email:" + e["action"]] += 1  # the business's doing: no activity of theirs
            continue
        s["n"] += 1
        s[f"n:{e['type']}"] += 1
        if e["type"] == "purchase":
            s["purchases"] += 1
            s["spend_cents"] += round(e["amount"] * 100)
    return state


async def test_thousand_events_counted_once_decided_and_malformed_dead_lettered(
    pipeline: Pipeline,
) -> None:
    bootstrap = pipeline.services.kafka_bootstrap
    worker = pipeline.start_worker()
    events = good_events(1000)
    duplicates = random.Random(5).sample(events, 100)
    bad = malformed_records(50)
    records: list[tuple[bytes | None, bytes]] = []
    for e in events:
        records.append((e["customer_id"].encode(), json.dumps(e).encode()))
    for e in duplicates:  # redelivered by the producer: must count once
        records.append((e["customer_id"].encode(), json.dumps(e).encode()))
    for i, (value, _) in enumerate(bad):
        records.append((f"bad-{i}".encode(), value))
    random.Random(9).shuffle(records)
    await produce(bootstrap, pipeline.topic("touchpoints"), records)

    # Every good event is processed: counters in Redis match, counting duplicates once.
    store = pipeline.store()
    expected = expected_counters(events)
    deadline = time.monotonic() + 90
    try:
        while True:
            profiles = {c: (await store.raw(c))["profile"] for c in expected}
            done = sum(int(p.get("n", 0)) for p in profiles.values())
            if done >= sum(w["n"] for w in expected.values()) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        for customer, want in expected.items():
            got = profiles[customer]
            for name, value in want.items():
                assert int(got.get(name, 0)) == value, (customer, name)
    finally:
        await store.close()

    # One next-best offer per distinct decision moment, none for duplicates or other events.
    clicks = {e["event_id"]: e for e in events if is_moment(e)}
    decisions = await consume_all(bootstrap, pipeline.topic("next-best-offers"), len(clicks))
    bodies = [json.loads(r.value) for r in decisions]  # type: ignore[attr-defined]
    assert sorted(b["trigger_event_id"] for b in bodies) == sorted(clicks)
    assert len({b["decision_id"] for b in bodies}) == len(bodies)
    for record, body in zip(decisions, bodies, strict=True):
        assert record.key == clicks[body["trigger_event_id"]]["customer_id"].encode()  # type: ignore[attr-defined]
        assert body["customer_id"] == clicks[body["trigger_event_id"]]["customer_id"]
        assert body["channel"] == CHANNEL[clicks[body["trigger_event_id"]]["type"]]
        assert isinstance(body["control"], bool) and isinstance(body["reasons"], list)
        assert body["model_version"]
        suppressed = any(r.startswith("suppressed:") for r in body["reasons"])
        if not body["control"] and not suppressed:
            assert body["offers"] or "no_eligible_offer" in body["reasons"], body
        for offer in body["offers"]:
            assert set(offer) == {"offer_id", "score", "propensity"}

    # The 50 malformed records are in the DLQ with their reasons and origin.
    letters = await consume_all(bootstrap, pipeline.topic("touchpoints-dlq"), len(bad))
    assert len(letters) == len(bad)
    sent_bad = {f"bad-{i}".encode(): (value, hint) for i, (value, hint) in enumerate(bad)}
    for letter in letters:
        headers = {k: v.decode() for k, v in letter.headers}  # type: ignore[attr-defined]
        value, hint = sent_bad[letter.key]  # type: ignore[attr-defined]
        assert (letter.value or b"") == value  # type: ignore[attr-defined]
        assert headers["source-topic"] == pipeline.topic("touchpoints")
        assert int(headers["source-partition"]) >= 0 and int(headers["source-offset"]) >= 0
        assert headers["error"].startswith("invalid: ") and hint in headers["error"], headers

    # The worker says the same on /metrics, once it counted every batch's events: a moment
    # after the batch's decisions and letters (counted before them) went out and were kept.
    def handled(result: str) -> float:
        return worker.metric_sum("moments_events_total", result=result)

    for result, times in (("ok", len(events)), ("duplicate", len(duplicates)),
                          ("invalid", len(bad))):  # fmt: skip
        await once_counted(partial(handled, result), times, f"the {result} events counted")
    types = ["web_click", "call", "email", "social_mention", "purchase", "survey", "consent"]
    ok = sum(worker.metric("moments_events_total", type=t, result="ok") for t in types)
    dup = sum(worker.metric("moments_events_total", type=t, result="duplicate") for t in types)
    assert ok == len(events)
    assert dup == len(duplicates)
    # counted under the type each names, when it is a known one
    named = Counter(named_type(value) for value, _ in bad)
    assert named["unknown"] and len(named) > 2, named  # both kinds of label are exercised
    for kind in (*EVENT_TYPES, "unknown"):
        counted = worker.metric("moments_events_total", type=kind, result="invalid")
        assert counted == named[kind], kind
    assert worker.metric("moments_dead_letters_total") == len(bad)
    decided = sum(
        worker.metric("moments_decisions_total", kind="next_best_offer", channel=c)
        for c in ("web", "call", "email")
    )
    assert decided == len(clicks)
    # every good record was keyed by its customer and partitioned as Kafka's default does
    assert worker.metric("moments_events_misrouted_total") == 0


async def test_a_record_on_another_partition_than_its_key_gives_is_counted_misrouted(
    pipeline: Pipeline,
) -> None:
    """A producer partitioning otherwise (librdkafka's default is CRC32, not the Java
    client's murmur2) spreads a customer's events over partitions, though it keys them
    by the customer: the worker applies them, and counts each one that is elsewhere."""
    bootstrap = pipeline.services.kafka_bootstrap
    worker = pipeline.start_worker()
    topic = pipeline.topic("touchpoints")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        partitions = sorted(await producer.partitions_for(topic))
        assert len(partitions) == 4  # the default MOMENTS_TOPIC_PARTITIONS
        events = [event for event in good_events(8, seed=23) if event["type"] != "email"][:6]
        elsewhere = 0
        for n, event in enumerate(events):
            key = event["customer_id"].encode()
            right = keyed_partition(key, len(partitions))
            partition = (right + 1) % len(partitions) if n % 2 else None  # None: the default
            elsewhere += partition is not None
            await producer.send_and_wait(topic, json.dumps(event).encode(), key=key,
                                         partition=partition)  # fmt: skip
    finally:
        await producer.stop()
    deadline = time.monotonic() + 60
    while worker.metric_sum("moments_events_total", result="ok") < len(events):
        assert time.monotonic() < deadline, "the worker did not apply every record"
        await asyncio.sleep(0.25)
    assert worker.metric("moments_events_misrouted_total") == elsewhere == 3


async def test_every_worker_of_a_group_counts_the_records_partitioned_otherwise(
    pipeline: Pipeline,
) -> None:
    """Two workers share the partitions: only the group's leader knew how many the topic
    has (Faust's own count is the leader's), so the other counted none of its own."""
    bootstrap = pipeline.services.kafka_bootstrap
    workers = [pipeline.start_worker(), pipeline.start_worker()]
    topic = pipeline.topic("touchpoints")

    def holds_some(worker: Worker) -> bool:  # reports the lag of a partition of the topic
        _, text = worker.get("/metrics")
        return any(line.startswith("moments_consumer_lag{") and f'topic="{topic}"' in line
                   for line in text.splitlines())  # fmt: skip

    deadline = time.monotonic() + 60
    while not all(holds_some(w) for w in workers):
        assert time.monotonic() < deadline, "the two workers never shared the partitions"
        await asyncio.sleep(0.5)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        partitions = sorted(await producer.partitions_for(topic))
        events = [event for event in good_events(60, seed=5) if event["type"] != "email"][:24]
        for event in events:
            key = event["customer_id"].encode()
            elsewhere = (keyed_partition(key, len(partitions)) + 1) % len(partitions)
            await producer.send_and_wait(topic, json.dumps(event).encode(), key=key,
                                         partition=elsewhere)  # fmt: skip
    finally:
        await producer.stop()
    deadline = time.monotonic() + 90
    while sum(w.metric_sum("moments_events_total", result="ok") for w in workers) < len(events):
        assert time.monotonic() < deadline, "the workers did not apply every record"
        await asyncio.sleep(0.5)
    applied = [w.metric_sum("moments_events_total", result="ok") for w in workers]
    counted = [w.metric("moments_events_misrouted_total") for w in workers]
    assert all(applied), applied  # each worker held some of the partitions written to
    assert counted == applied  # every record was elsewhere, and each worker says so
    deadline = time.monotonic() + 10  # one of the two leads the group (it learns)
    while sorted(w.metric("moments_worker_leading") for w in workers) != [0.0, 1.0]:
        assert time.monotonic() < deadline, [w.metric("moments_worker_leading") for w in workers]
        await asyncio.sleep(0.5)
