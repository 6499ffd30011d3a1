"""What learning keeps in Redis, on real Kafka and Redis: only the newest model snapshot,
outcome claims no longer than a decision context, example claims in keys of the model's
(not a customer's) for a lifetime, and a learner's positions past outcomes that taught
nothing, so that a restarted learner does not count them again."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from agents.learned_policy import ModelHolder
from feature_store import FeatureStore, RepliesUnknown, StoreConfig
from feature_store.models import CLAIM_SHARDS
from feature_store.records import DecisionRecord
from feature_store.redis_errors import unavailable_when_transient
from feature_store.transport import RepliesLost
from streams.metrics import Metrics
from streams.model_snapshots import MODEL
from streams.offer_learner import OfferLearner
from streams.services import Services
from tests.integration.test_api_support import keys_tagged, left_by_erasure
from tests.integration.test_touchpoints_pipeline import produce

pytestmark = pytest.mark.integration

DAY_S = 86_400.0


def _store(services: Services, clock: Callable[[], float] = time.time) -> FeatureStore:
    prefix = f"ls{uuid.uuid4().hex[:8]}"
    return FeatureStore.from_url(services.redis_url, StoreConfig(prefix.encode(), prefix),
                                 clock=clock)  # fmt: skip


async def _keys(redis_url: str, pattern: str) -> list[str]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        return sorted([k async for k in client.scan_iter(match=pattern, count=1000)])
    finally:
        await client.aclose()


async def test_only_the_newest_model_snapshot_is_kept(kafka_redis: Services) -> None:
    store = _store(kafka_redis)
    models, prefix = store.models, store._config.prefix
    try:
        for version in range(5):
            assert await models.publish("bandit", version, f'{{"n": {version}}}') == version + 1
        assert await _keys(kafka_redis.redis_url, f"{prefix}:model:*") == [
            f"{prefix}:model:{{bandit}}"
        ]
        assert await models.load("bandit") == (5, '{"n": 4}')
    finally:
        await store.close()


async def test_positions_are_kept_beside_the_snapshot_they_read_on_from(
    kafka_redis: Services,
) -> None:
    store = _store(kafka_redis)
    models = store.models
    try:
        assert await models.save_positions("risk", 0, '{"0": 7}')  # before any snapshot
        assert await models.positions("risk", 0) == '{"0": 7}'
        assert await models.load("risk") is None and await models.version("risk") == 0
        assert await models.publish("risk", 0, '{"model": 1}') == 1
        assert await models.positions("risk", 1) is None  # the snapshot carries its own
        assert await models.save_positions("risk", 1, '{"0": 9}')
        assert not await models.save_positions("risk", 0, '{"0": 3}')  # a stale learner
        assert await models.positions("risk", 1) == '{"0": 9}'
        assert await models.positions("risk", 0) is None
        assert await models.version("risk") == 1  # no new version for the same model
        # a learner of an older Moments publishes over them, knowing nothing of positions
        client = aioredis.Redis.from_url(kafka_redis.redis_url, decode_responses=True)
        try:
            await client.hset(models._key("risk"), mapping={"version": 2, "payload": "{}"})
        finally:
            await client.aclose()
        assert await models.positions("risk", 2) is None  # they were read on from version 1
    finally:
        await store.close()


async def _decided(
    store: FeatureStore, *decision_ids: str, at_s: float | None = None, offer: str = "o1"
) -> None:
    """Record customer c1's decisions, each offering ``offer``, as a worker does (their
    contexts are what a claim looks for)."""
    ts_ms = int((time.time() if at_s is None else at_s) * 1000)
    await store.decisions.record(
        [DecisionRecord("c1", d, ts_ms, offering(d, offer)) for d in decision_ids]
    )


def offering(decision_id: str, *offer_ids: str) -> bytes:
    """A decision's context as far as a claim reads it: the offers it made."""
    offers = [{"offer_id": o, "score": 1.0, "propensity": 1.0} for o in offer_ids]
    return json.dumps(
        {"decision_id": decision_id, "offers": offers}, separators=(",", ":")
    ).encode()


async def test_outcome_claims_are_dropped_once_their_context_would_be(
    kafka_redis: Services,
) -> None:
    now = [1_800_000_000.0]
    store = _store(kafka_redis, clock=lambda: now[0])
    claim = store.decisions.claim_outcomes
    await _decided(store, "d1", "d2", "d3", at_s=now[0])
    try:
        assert await claim([("c1", "d1", "d1:o1:clicked", "0:1")]) == ["learn"]
        # a replay: learned again (by a learner whose snapshot lacks it), not a new outcome
        assert await claim([("c1", "d1", "d1:o1:clicked", "0:1")]) == ["relearn"]
        assert await claim([("c1", "d1", "d1:o1:clicked", "0:9")]) == ["skip"]  # a copy
        now[0] += 6 * DAY_S
        assert await claim([("c1", "d2", "d2:o1:accepted", "0:2")]) == ["learn"]
        assert set((await store.export("c1")).outcomes) == {"d1:o1", "d2:o1"}
        now[0] += 2 * DAY_S  # d1's claim is 8 days old: its context is gone (7 days)
        assert await claim([("c1", "d3", "d3:o1:shown", "0:3")]) == ["learn"]
        assert set((await store.export("c1")).outcomes) == {"d2:o1", "d3:o1"}
        assert await claim([("c1", "d2", "d2:o1:accepted", "0:8")]) == ["skip"]  # still claimed
    finally:
        await store.close()


async def test_outcomes_for_offers_their_decision_did_not_make_are_not_claimed(
    kafka_redis: Services,
) -> None:
    """Claimed, they piled up without bound in the customer's hash (a page's key, seen by
    every visitor, could post a made-up offer id per outcome), though none teaches."""
    store = _store(kafka_redis)
    claim = store.decisions.claim_outcomes
    await _decided(store, "d1")  # offers o1
    ts_ms = int(time.time() * 1000)
    alert = json.dumps({"intervention_id": "i1", "kind": "save_desk"}).encode()
    await store.decisions.record([DecisionRecord("c1", "i1", ts_ms, alert)])
    try:
        made_up = [("c1", "d1", f"d1:junk-{n}:clicked", f"0:{n}") for n in range(50)]
        assert await claim(made_up) == ["not_offered"] * 50
        assert await claim([("c1", "d1", "d1:o:clicked", "0:50")]) == ["not_offered"]  # o1's
        across = 'o1","score'  # matches the stored JSON across two fields
        assert await claim([("c1", "d1", f"d1:{across}:clicked", "0:53")]) == ["not_offered"]
        assert await claim([("c1", "i1", "i1:o1:clicked", "0:51")]) == ["not_an_offer"]
        assert await claim([("c1", "d1", "d1:o1:clicked", "0:52")]) == ["learn"]
        assert set((await store.export("c1")).outcomes) == {"d1:o1"}
    finally:
        await store.close()


async def test_an_outcome_whose_decision_is_not_stored_is_not_claimed(
    kafka_redis: Services,
) -> None:
    store = _store(kafka_redis)
    claim = store.decisions.claim_outcomes
    try:
        assert await claim([("c1", "d9", "d9:o1:accepted", "0:1")]) == ["no_context"]
        assert (await store.export("c1")).outcomes == {}
        await _decided(store, "d9")  # its decision is recorded at last
        # sent back from the dead-letter topic: another record, and it is learned
        assert await claim([("c1", "d9", "d9:o1:accepted", "1:5")]) == ["learn"]
        await store.erase("c1")
        assert await claim([("c1", "d9", "d9:o1:accepted", "1:6")]) == ["erased"]
    finally:
        await store.close()


async def test_an_outcome_claimed_before_is_read_again_or_skipped_once_its_context_is_gone(
    kafka_redis: Services,
) -> None:
    """The context was looked for before the claim: a learner restarted after a context
    expired had the outcome it had claimed (and learned, in a snapshot it never
    published) set aside as no_context, and a late copy of one learned was too."""
    store = _store(kafka_redis)
    claim = store.decisions.claim_outcomes
    await _decided(store, "d1")
    try:
        assert await claim([("c1", "d1", "d1:o1:accepted", "0:1")]) == ["learn"]
        client = aioredis.Redis.from_url(kafka_redis.redis_url)
        try:
            assert await client.delete(store.decisions._keys.for_customer("c1").context("d1"))
        finally:
            await client.aclose()
        assert await claim([("c1", "d1", "d1:o1:accepted", "0:1")]) == ["relearn"]
        assert await claim([("c1", "d1", "d1:o1:accepted", "0:7")]) == ["skip"]
        assert await claim([("c1", "d1", "d1:o1:clicked", "0:8")]) == ["no_context"]
    finally:
        await store.close()


async def test_a_customer_whose_claim_keys_are_corrupt_has_their_outcome_set_aside_alone(
    kafka_redis: Services,
) -> None:
    """One customer's outcomes hash held another type: the claims of the whole batch
    failed, and the learner restarted on the same batch every second, learning nothing
    of anyone after it."""
    store = _store(kafka_redis)
    ts_ms = int(time.time() * 1000)
    await store.decisions.record(
        [DecisionRecord(c, f"d-{c}", ts_ms, offering(f"d-{c}", "book-club"))
         for c in ("c1", "c2", "c3", "c4")]
    )  # fmt: skip
    client = aioredis.Redis.from_url(kafka_redis.redis_url)
    try:
        await client.set(store.decisions._keys.for_customer("c2").outcomes, "not a hash")
        context = store.decisions._keys.for_customer("c3").context("d-c3")
        await client.delete(context)
        await client.rpush(context, "not a context")  # claimed, and read as none
        # not UTF-8 (another client's, or corrupted): it failed the whole context read
        await client.set(store.decisions._keys.for_customer("c4").context("d-c4"), b"\xff{")
    finally:
        await client.aclose()
    records = [
        SimpleNamespace(topic="offer-outcomes", partition=0, offset=n, key=c.encode(), headers=[],
                        value=json.dumps({"decision_id": f"d-{c}", "customer_id": c,
                                          "offer_id": "book-club", "outcome": "accepted",
                                          "ts": "2026-12-01T10:00:00Z"}).encode())
        for n, c in enumerate(("c1", "c2", "c3", "c4"))
    ]  # fmt: skip
    metrics = Metrics()
    letters, dead_letter = _letters()
    learner = OfferLearner(store, ModelHolder(), metrics, "", "offer-outcomes", dead_letter)
    learner._start(None, 0)
    try:
        await learner._learn(0, records)
        (letter,) = letters
        assert letter["key"] == b"c2"
        assert dict(letter["headers"])["error"].startswith(
            b"corrupt_keys: ResponseError: WRONGTYPE"
        )
        client = aioredis.Redis.from_url(kafka_redis.redis_url)
        try:  # claimed: the others of the batch went on
            assert await client.hlen(store.decisions._keys.for_customer("c1").outcomes)
        finally:
            await client.aclose()
        count = metrics.registry.get_sample_value
        assert count("moments_learning_outcomes_total", {"result": "corrupt_keys"}) == 1
        assert count("moments_outcomes_total", {"outcome": "accepted"}) == 1  # c1's, claimed
        # c1's context holds its offer but is no whole decision (as written here), nor is
        # c4's, which is no UTF-8; c3's key holds a list: neither of those two is claimed
        assert count("moments_learning_outcomes_total", {"result": "not_an_offer_decision"}) == 2
        assert count("moments_learning_outcomes_total", {"result": "bad_context"}) == 1
    finally:
        await store.close()


async def test_claims_made_before_their_times_were_kept_are_dropped_in_time(
    kafka_redis: Services,
) -> None:
    now = [1_800_000_000.0]
    store = _store(kafka_redis, clock=lambda: now[0])
    keys = store._keys.for_customer("c1")
    client = aioredis.Redis.from_url(kafka_redis.redis_url, decode_responses=True)
    await _decided(store, "d1", "d2", at_s=now[0])
    claim = store.decisions.claim_outcomes
    try:
        await client.hset(keys.outcomes, mapping={"d0:o1:clicked": "0:0"})  # an older layout
        assert await claim([("c1", "d1", "d1:o1:clicked", "0:1")]) == ["learn"]
        now[0] += 8 * DAY_S
        assert await claim([("c1", "d2", "d2:o1:clicked", "0:2")]) == ["learn"]
        assert await client.hkeys(keys.outcomes) == ["d2:o1"]
    finally:
        await client.aclose()
        await store.close()


async def test_claim_times_of_an_older_layout_expire_even_when_nothing_new_is_claimed(
    kafka_redis: Services,
) -> None:
    store = _store(kafka_redis)
    keys = store._keys.for_customer("c1")
    client = aioredis.Redis.from_url(kafka_redis.redis_url, decode_responses=True)
    await _decided(store, "d0")
    try:
        await client.hset(keys.outcomes, mapping={"d0:o1:clicked": "0:0"})  # an older layout
        await client.expire(keys.outcomes, 3600)
        # a replay of that very claim: it claims again, but adds nothing
        claims = [("c1", "d0", "d0:o1:clicked", "0:0")]
        assert await store.decisions.claim_outcomes(claims) == ["relearn"]
        assert await client.zcard(keys.outcome_times) == 1
        assert 0 < await client.ttl(keys.outcome_times) <= store._config.context_ttl_s
    finally:
        await client.aclose()
        await store.close()


async def test_example_claims_remember_their_record_and_are_dropped_in_time(
    kafka_redis: Services,
) -> None:
    now = [1_800_000_000.0]
    store = _store(kafka_redis, clock=lambda: now[0])
    claim, prefix = store.models.claim_examples, store._config.prefix
    client = aioredis.Redis.from_url(kafka_redis.redis_url, decode_responses=True)
    ids = [f"risk:{store.pseudonym(f'c{i}')}:1796126400000" for i in range(40)]
    try:
        assert await claim("risk", [(e, f"0:{i}") for i, e in enumerate(ids)]) == ["new"] * 40
        # in order, within one call too: the same record again, a copy, a new one, its copy
        found = await claim("risk", [(ids[3], "0:3"), (ids[3], "1:0"), ("risk:x:2", "1:1"),
                                     ("risk:x:2", "1:2")])  # fmt: skip
        assert found == ["again", "copy", "new", "copy"]
        assert await claim("nbo", [(ids[3], "0:9")]) == ["new"]  # each model its own
        # the model's keys, spread over slots, none named after a customer, all expiring
        keys = await _keys(kafka_redis.redis_url, f"{prefix}:claim*")
        assert 2 < len(keys) <= 4 * CLAIM_SHARDS
        assert all(k.startswith((f"{prefix}:claims:{{", f"{prefix}:claimt:{{")) for k in keys)
        assert not any(store.pseudonym(f"c{i}") in k for k in keys for i in range(40))
        for key in keys:
            assert 0 < await client.ttl(key) <= store._config.dedupe_horizon_s
        now[0] += store._config.dedupe_horizon_s - 60  # not yet dropped
        assert await claim("risk", [(ids[5], "3:3")]) == ["copy"]
        now[0] += 120
        # dropped: claimed again, and the others of its key (claimed as long ago) with it
        assert await claim("risk", [(ids[5], "3:3")]) == ["new"]
        shard = [k for k in keys if k.startswith(f"{prefix}:claims:") and
                 await client.hexists(k, ids[5])]  # fmt: skip
        assert len(shard) == 1 and await client.hkeys(shard[0]) == [ids[5]]
        times = shard[0].replace(":claims:", ":claimt:")
        assert await client.zrange(times, 0, -1) == [ids[5]]
    finally:
        await client.aclose()
        await store.close()


async def test_example_claims_taken_back_are_gone_from_both_keys(kafka_redis: Services) -> None:
    """The risk learner takes back the claims of examples whose customer was erased while
    they were claimed: no claim naming them (by keyed hash) stays after the erasure."""
    store = _store(kafka_redis)
    prefix = store._config.prefix
    ids = [f"risk:{store.pseudonym(f'c{i}')}:1796126400000" for i in range(6)]
    client = aioredis.Redis.from_url(kafka_redis.redis_url, decode_responses=True)
    try:
        claimed = await store.models.claim_examples(
            "risk", [(e, f"0:{i}") for i, e in enumerate(ids)]
        )
        assert claimed == ["new"] * 6
        await store.models.unclaim_examples("risk", ids[:3])
        await store.models.unclaim_examples("risk", [])  # nothing to do
        held: list[str] = []
        for key in await _keys(kafka_redis.redis_url, f"{prefix}:claim*"):
            if key.startswith(f"{prefix}:claims:"):
                held += await client.hkeys(key)
            else:
                held += await client.zrange(key, 0, -1)
        assert sorted(held) == sorted(ids[3:] * 2)  # each in its hash and its times
        again = await store.models.claim_examples("risk", [(ids[0], "0:0"), (ids[4], "0:4")])
        assert again == ["new", "again"]
    finally:
        await client.aclose()
        await store.close()


async def test_erasure_removes_the_claims_and_their_times(kafka_redis: Services) -> None:
    store = _store(kafka_redis)
    await _decided(store, "d1")
    try:
        await store.decisions.claim_outcomes([("c1", "d1", "d1:o1:clicked", "0:1")])
        tag = store.pseudonym("c1")
        prefix = store._config.prefix
        keys = store._keys.for_customer("c1")
        kept = await keys_tagged(kafka_redis.redis_url, tag)
        assert {keys.outcomes, keys.outcome_times} <= set(kept)
        receipt = await store.erase("c1")
        assert {"outcomes", "outcome_times"} <= set(receipt.kinds)
        assert await keys_tagged(kafka_redis.redis_url, tag) == left_by_erasure(
            f"{prefix}:{{{tag}}}:erased"
        )
    finally:
        await store.close()


# --- a learner reading outcomes that teach nothing ------------------------------------


def _outcomes(n: int) -> list[tuple[bytes | None, bytes]]:
    ts = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return [
        (b"c1", json.dumps({"decision_id": f"unknown-{i}", "customer_id": "c1",
                            "offer_id": "book-club", "outcome": ["shown", "accepted"][i % 2],
                            "ts": ts}).encode())
        for i in range(n)
    ]  # fmt: skip


def _letters() -> tuple[list[dict[str, Any]], Callable[..., Awaitable[Awaitable[None]]]]:
    """The letters a learner sends, and the dead-letter send that keeps them."""
    sent: list[dict[str, Any]] = []

    async def dead_letter(**letter: Any) -> Awaitable[None]:
        sent.append(letter)
        return asyncio.sleep(0)  # delivered

    return sent, dead_letter


def _outcomes_read(metrics: Metrics) -> float:
    """The outcomes the learner read that taught nothing (those of decisions not stored:
    ``moments_learning_outcomes_total``)."""
    count = metrics.registry.get_sample_value
    return sum(
        count("moments_learning_outcomes_total", {"result": r}) or 0.0
        for r in ("no_reward", "no_context")
    )


def _outcomes_counted(metrics: Metrics) -> float:
    """``moments_outcomes_total``, every outcome together."""
    count = metrics.registry.get_sample_value
    return sum(
        count("moments_outcomes_total", {"outcome": o}) or 0.0 for o in ("shown", "accepted")
    )


async def _learn_until(learner: OfferLearner, done: Callable[[], Awaitable[bool]]) -> None:
    stop = False

    async def watch() -> None:
        nonlocal stop
        deadline = time.monotonic() + 60
        while not await done():
            assert time.monotonic() < deadline, "the learner did not get there in time"
            await asyncio.sleep(0.2)
        stop = True

    await asyncio.gather(learner.run(lambda: not stop), watch())


async def test_a_restarted_learner_does_not_read_again_outcomes_that_taught_nothing(
    kafka_redis: Services,
) -> None:
    bootstrap = kafka_redis.kafka_bootstrap
    topic = f"ls-outcomes-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    await produce(bootstrap, topic, _outcomes(40))
    store = _store(kafka_redis)
    try:
        first = Metrics()
        letters, dead_letter = _letters()
        learner = OfferLearner(store, ModelHolder(), first, bootstrap, topic, dead_letter,
                          publish_every_s=0.2)  # fmt: skip

        read_all_at: list[float] = []

        async def read_all_a_while_ago() -> bool:  # time for a few checkpoints after
            if not read_all_at and _outcomes_read(first) == 40:
                read_all_at.append(time.monotonic())
            return bool(read_all_at) and time.monotonic() - read_all_at[0] > 1.5

        await _learn_until(learner, read_all_a_while_ago)
        # the accepted ones name decisions that are not stored: set aside to send back
        assert len(letters) == 20
        assert all(dict(letter["headers"])["error"].startswith(b"no_context: ")
                   for letter in letters)  # fmt: skip
        assert _outcomes_counted(first) == 0  # none claimed: counted once sent back, claimed

        again = Metrics()  # the next leader
        letters_again, dead_letter_again = _letters()
        restarted = OfferLearner(store, ModelHolder(), again, bootstrap, topic, dead_letter_again,
                            publish_every_s=0.2)  # fmt: skip
        reads = 0

        async def caught_up() -> bool:
            nonlocal reads
            reads += 1
            return reads > 15  # three seconds of reading

        await _learn_until(restarted, caught_up)
        assert _outcomes_read(again) == 0 and letters_again == []
        assert await store.models.positions(MODEL, 0) == '{"0":40}'
        assert await store.models.version(MODEL) == 0  # nothing learned: no model published
    finally:
        await store.close()


async def test_an_outcome_claimed_while_its_reply_was_lost_is_counted_once_read_again(
    kafka_redis: Services,
) -> None:
    """Redis made both claims, but the connection went after the first reply: the
    learner restarts and reads them again, and each is counted once (the lost one was
    counted nowhere: read again, its claim answers that this record made it)."""
    store = _store(kafka_redis)
    await _decided(store, "d1", "d2", offer="book-club")
    conn: Any = store.decisions._conn
    submit = conn.submit

    async def reset_after_the_first_reply(commands: list[Any]) -> list[Any]:
        replies = await submit(commands)  # run in full
        with unavailable_when_transient():
            raise RepliesLost("Connection reset by peer", replies[:1])

    metrics = Metrics()
    _, dead_letter = _letters()
    learner = OfferLearner(store, ModelHolder(), metrics, "", "offer-outcomes", dead_letter)
    ts = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    records = [
        SimpleNamespace(topic="offer-outcomes", partition=0, offset=n, key=b"c1", headers=[],
                        value=json.dumps({"decision_id": d, "customer_id": "c1",
                                          "offer_id": "book-club", "outcome": "accepted",
                                          "ts": ts}).encode())
        for n, d in enumerate(["d1", "d2"])
    ]  # fmt: skip
    try:
        learner._start(None, 0)
        conn.submit = reset_after_the_first_reply
        with pytest.raises(RepliesUnknown):
            await learner._learn(0, records)
        conn.submit = submit
        for _ in range(2):  # restarted from a snapshot that lacks them, twice
            learner._start(None, 0)
            await learner._learn(0, records)
            assert _outcomes_counted(metrics) == 2
    finally:
        await store.close()
