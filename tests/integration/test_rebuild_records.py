"""``moments rebuild`` with the records a long-running deployment accumulates: letters of
batches given up after repeated failures, decisions older than their contexts' lifetime,
and decision records it cannot decode."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.records_to_delete import RecordsToDelete

from agents.letters import SourceRecord, dead_letter_headers
from feature_store import FeatureStore, StoreConfig
from schemas import NextBestOffer, OfferScore, encode_decision
from streams.rebuild import rebuild
from streams.rebuild_report import RebuildReport
from streams.services import LocalRedis
from streams.settings import Settings
from streams.topics import ensure_topics
from tests.integration.conftest import SECRET, Pipeline
from tests.integration.test_api_support import event, iso, keys_tagged

pytestmark = pytest.mark.integration

GIVEN_UP = "batch failed 3 times: RuntimeError: boom"


async def write(
    pipeline: Pipeline,
    topic: str,
    records: list[tuple[bytes, bytes]],
    sent_ms: list[int] | None = None,
) -> list[Any]:
    """Send records to one of the deployment's topics (each timed ``sent_ms``, when they
    were sent, if given: by default now); their metadata, in order."""
    await ensure_topics(Settings.from_env(pipeline.env(0)))
    producer = AIOKafkaProducer(bootstrap_servers=pipeline.services.kafka_bootstrap, acks="all")
    await producer.start()
    times: list[int | None] = [*sent_ms] if sent_ms is not None else [None] * len(records)
    try:
        return [await producer.send_and_wait(pipeline.topic(topic), value, key=key,
                                             timestamp_ms=at)
                for (key, value), at in zip(records, times, strict=True)]  # fmt: skip
    finally:
        await producer.stop()


async def given_up(
    pipeline: Pipeline, events: list[dict[str, Any]], taken_ms: int | None = None
) -> list[TopicPartition]:
    """The touchpoints, and their letters as a worker writes them for a batch given up
    (one it took to handle at ``taken_ms``, if given); where the letters went."""
    records = [(e["customer_id"].encode(), json.dumps(e).encode()) for e in events]
    sent = await write(pipeline, "touchpoints", records)
    letters = []
    for (key, value), at in zip(records, sent, strict=True):
        origin = SourceRecord(at.topic, at.partition, at.offset, key, value, taken_ms=taken_ms)
        letters.append((key, value, dead_letter_headers(origin, GIVEN_UP)))
    producer = AIOKafkaProducer(bootstrap_servers=pipeline.services.kafka_bootstrap, acks="all")
    await producer.start()
    where = []
    try:
        for key, value, headers in letters:
            sent = await producer.send_and_wait(
                pipeline.topic("touchpoints-dlq"), value, key=key, headers=headers
            )
            where.append(TopicPartition(sent.topic, sent.partition))
    finally:
        await producer.stop()
    return where


async def rebuilt(pipeline: Pipeline, target: LocalRedis) -> tuple[RebuildReport, FeatureStore]:
    store = FeatureStore.from_url(
        target.url, StoreConfig(secret=SECRET.encode(), prefix=pipeline.prefix.rstrip("-"))
    )
    return await rebuild(Settings.from_env(pipeline.env(0)), store), store


def decision(decision_id: str, customer_id: str, days_ago: float, offered: bool = True) -> bytes:
    at = datetime.now(UTC) - timedelta(days=days_ago)
    offers = [OfferScore(offer_id="any", score=1.0, propensity=1.0)] if offered else []
    made = NextBestOffer(decision_id=decision_id, customer_id=customer_id, ts=at, channel="web",
                         trigger_event_id=f"t-{decision_id}", offers=offers)  # fmt: skip
    return encode_decision(made)


async def test_rebuild_applies_the_events_of_a_batch_given_up(
    pipeline: Pipeline, private_redis: LocalRedis
) -> None:
    """A batch is given up only once its events were applied: a consent withdrawn in it
    stays withdrawn; an event dated too far ahead was refused before, and stays out."""
    withdrawn = event("consent", "rb-withdrawn", "rb-e1", channel="email", granted=False)
    ahead = event("web_click", "rb-ahead", "rb-e2", minutes_ago=0)
    ahead["ts"] = iso(datetime.now(UTC) + timedelta(hours=2))
    await given_up(pipeline, [withdrawn, ahead])
    report, store = await rebuilt(pipeline, private_redis)
    try:
        features = await store.read("rb-withdrawn")
        assert features is not None and not features.consents_to("email")
        assert await store.read("rb-ahead") is None
        assert (report.touchpoints, report.applied, report.skipped_invalid) == (2, 1, 1)
    finally:
        await store.close()


async def test_rebuild_says_when_the_dead_letters_lost_their_oldest_letters(
    pipeline: Pipeline, private_redis: LocalRedis
) -> None:
    """Retention deleted a letter: the rebuild cannot tell the event it named was refused
    live, and applies it; it says so rather than rebuilding something else unannounced."""
    ahead = event("web_click", "rb-lost-letter", "rb-e9", minutes_ago=0)
    ahead["ts"] = iso(datetime.now(UTC) + timedelta(hours=2))
    (letters,) = await given_up(pipeline, [ahead])
    report, store = await rebuilt(pipeline, private_redis)
    await store.close()
    assert not report.dead_letters_lost and report.applied == 0
    admin = AIOKafkaAdminClient(bootstrap_servers=pipeline.services.kafka_bootstrap)
    await admin.start()
    try:  # as retention would
        await admin.delete_records({letters: RecordsToDelete(1)}, timeout_ms=10_000)
    finally:
        await admin.close()
    report, store = await rebuilt(pipeline, private_redis)  # over the first: the same keys
    await store.close()
    assert report.dead_letters_lost


async def test_rebuild_refuses_an_event_dated_ahead_of_now_whose_letter_it_did_not_read(
    pipeline: Pipeline, private_redis: LocalRedis
) -> None:
    """A worker refuses an event dated beyond the allowed skew; its letter may be written
    after the rebuild read the letters (a worker behind), or have expired: a consent
    grant dated 2099 must not outrank the withdrawal that came after it, for ever."""
    grant = event("consent", "rb-2099", "rb-f1", channel="email", granted=True)
    grant["ts"] = "2099-01-01T00:00:00Z"
    withdrawal = event("consent", "rb-2099", "rb-f2", channel="email", granted=False)
    await write(pipeline, "touchpoints",
                [(b"rb-2099", json.dumps(e).encode()) for e in (grant, withdrawal)])  # fmt: skip
    report, store = await rebuilt(pipeline, private_redis)
    try:
        features = await store.read("rb-2099")
        assert features is not None and not features.consents_to("email")
        assert features.last_seen is not None and features.last_seen.year < 2099
        assert (report.applied, report.skipped_invalid) == (1, 1)
    finally:
        await store.close()


async def test_rebuild_judges_an_event_ahead_by_when_the_worker_took_its_batch(
    pipeline: Pipeline, private_redis: LocalRedis
) -> None:
    """The batch was taken three hours ago and given up only now (retried through an
    outage): its event dated an hour ago was two hours ahead then, refused, and stays
    out, though it is not ahead of when its letter was written."""
    ahead_then = event("web_click", "rb-then", "rb-t1", minutes_ago=60)
    taken = datetime.now(UTC) - timedelta(hours=3)
    await given_up(pipeline, [ahead_then], taken_ms=int(taken.timestamp() * 1000))
    report, store = await rebuilt(pipeline, private_redis)
    try:
        assert await store.read("rb-then") is None
        assert (report.applied, report.skipped_invalid) == (0, 1)
    finally:
        await store.close()


async def test_rebuild_keeps_decision_contexts_only_for_what_is_left_of_their_lifetime(
    pipeline: Pipeline, private_redis: LocalRedis
) -> None:
    await write(pipeline, "next-best-offers", [
        (b"rb-c", decision("rb-d-recent", "rb-c", days_ago=3)),
        (b"rb-c", decision("rb-d-expired", "rb-c", days_ago=8)),  # 7 days kept by default
        (b"rb-c", decision("rb-d-nothing", "rb-c", days_ago=2, offered=False)),  # a day
    ])  # fmt: skip
    report, store = await rebuilt(pipeline, private_redis)
    admin = aioredis.Redis.from_url(private_redis.url, decode_responses=True)
    try:
        assert report.decisions == 3
        found = await store.decisions.contexts(
            [("rb-c", "rb-d-recent"), ("rb-c", "rb-d-expired"), ("rb-c", "rb-d-nothing")]
        )
        assert [c is not None for c in found] == [True, False, False]
        assert found[0] is not None and json.loads(found[0])["customer_id"] == "rb-c"
        tagged = await keys_tagged(private_redis.url, store.pseudonym("rb-c"))
        (kept,) = [k for k in tagged if ":ctx:" in k]
        assert 4 * 86400 - 120 <= await admin.ttl(kept) <= 4 * 86400
        assert "rb-c" not in (await admin.get(kept) or "")  # kept without the customer's id
    finally:
        await admin.aclose()
        await store.close()


async def test_rebuild_skips_decision_records_it_cannot_decode(
    pipeline: Pipeline, private_redis: LocalRedis
) -> None:
    await write(pipeline, "next-best-offers", [
        (b"rb-s", b'{"decision_id": 7}'), (b"rb-s", b"not json"),
        (b"rb-s", decision("rb-d-good", "rb-s", days_ago=0)),
    ])  # fmt: skip
    await write(pipeline, "interventions", [(b"rb-s", b"{}")])
    report, store = await rebuilt(pipeline, private_redis)
    try:
        assert report.skipped_decisions == 3 and report.decisions == 4
        assert await store.decisions.contexts([("rb-s", "rb-d-good")]) != [None]
    finally:
        await store.close()


async def test_rebuild_records_fallback_answers_as_live_does(
    pipeline: Pipeline, private_redis: LocalRedis
) -> None:
    """Live, a fallback answer is recorded once Redis says its customer is not erased,
    with the offers it showed (their cool-downs hold), but spends no budget: the rebuild
    dropped it, so its outcomes found no decision."""
    shown = OfferScore(offer_id="free-shipping", score=0.0, propensity=1.0)
    answered = NextBestOffer(decision_id="rb-d-fallback", customer_id="rb-f",
                             ts=datetime.now(UTC), channel="web", trigger_event_id=None,
                             offers=[shown], model_version="fallback", fallback=True)  # fmt: skip
    await write(pipeline, "next-best-offers", [
        (b"rb-f", encode_decision(answered)), (b"rb-g", decision("rb-d-kept", "rb-g", 0)),
    ])  # fmt: skip
    report, store = await rebuilt(pipeline, private_redis)
    try:
        assert report.decisions >= 2
        assert await store.decisions.contexts([("rb-f", "rb-d-fallback")]) != [None]
        (_, features), _ = await store.read_for_decisions(["rb-f", "rb-g"])
        assert features is not None and "free-shipping" in features.contact.last_shown
        assert await store.decisions.contexts([("rb-g", "rb-d-kept")]) != [None]
    finally:
        await store.close()


async def test_a_customer_whose_keys_fail_in_the_target_is_skipped_and_the_rest_rebuilt(
    pipeline: Pipeline, private_redis: LocalRedis
) -> None:
    """``--force`` into a Redis holding a customer's key of another type (a faulty tool):
    the customer's records are skipped and counted, as live dead-letters them, where the
    rebuild stopped with a traceback at the same record on every run."""
    broken, fine = "rb-broken", "rb-fine"
    events = [event("web_click", c, f"rb-k{n}", minutes_ago=5 + n)
              for n, c in enumerate([broken, fine, broken, fine])]  # fmt: skip
    await write(pipeline, "touchpoints",
                [(e["customer_id"].encode(), json.dumps(e).encode()) for e in events])  # fmt: skip
    await write(pipeline, "next-best-offers", [
        (broken.encode(), decision("rb-d1", broken, 0.01)),
        (fine.encode(), decision("rb-d2", fine, 0.01)),
    ])  # fmt: skip
    store = FeatureStore.from_url(
        private_redis.url, StoreConfig(secret=SECRET.encode(), prefix=pipeline.prefix.rstrip("-"))
    )
    try:
        await store.layout.mark()
        admin = aioredis.Redis.from_url(private_redis.url)
        await admin.set(store._keys.for_customer(broken).profile, "not a hash")
        await admin.aclose()
        report = await rebuild(Settings.from_env(pipeline.env(0)), store, force=True)
        assert report.customers_failed == 1
        assert report.applied == 2  # the other customer's two clicks
        features = await store.read(fine)
        assert features is not None and features.events == 2
    finally:
        await store.close()
