"""The learning loop on real Kafka and Redis: outcomes teach the one shared model once."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis

from agents.bandit import LinUCBOffers
from streams.model_snapshots import MODEL, restore
from tests.integration.conftest import Pipeline, consume_all
from tests.integration.test_api_support import once_counted
from tests.integration.test_dead_letter_redrive import dead_letters
from tests.integration.test_touchpoints_pipeline import produce

pytestmark = pytest.mark.integration


def clicks(n: int, start: int = 0) -> list[dict[str, Any]]:
    now = datetime.now(UTC) - timedelta(minutes=5)
    return [
        {"type": "web_click", "event_id": f"learn-{i}", "customer_id": f"learner-{i % 50}",
         "ts": (now + timedelta(milliseconds=i)).isoformat().replace("+00:00", "Z"),
         "page": "/p", "category": ["books", "home", "sports"][i % 3]}
        for i in range(start, start + n)
    ]  # fmt: skip


async def decisions_for(pipeline: Pipeline, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    await produce(
        pipeline.services.kafka_bootstrap,
        pipeline.topic("touchpoints"),
        [(e["customer_id"].encode(), json.dumps(e).encode()) for e in events],
    )
    records = await consume_all(
        pipeline.services.kafka_bootstrap, pipeline.topic("next-best-offers"), len(events)
    )
    wanted = {e["event_id"] for e in events}
    bodies = [json.loads(r.value) for r in records]  # type: ignore[attr-defined]
    return [b for b in bodies if b["trigger_event_id"] in wanted and b["offers"]]


def outcomes(decisions: list[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
    """Books offers are accepted, the rest dismissed: something to learn."""
    ts = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    out = []
    for d in decisions:
        offer = d["offers"][0]["offer_id"]
        verdict = "accepted" if offer == "book-club" else "dismissed"
        body = {"decision_id": d["decision_id"], "customer_id": d["customer_id"],
                "offer_id": offer, "outcome": verdict, "ts": ts}  # fmt: skip
        out.append((d["customer_id"].encode(), json.dumps(body).encode()))
    return out


async def snapshot(pipeline: Pipeline, updates: int, wait_s: float = 120) -> LinUCBOffers:
    store = pipeline.store()
    try:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            found = await store.models.load(MODEL)
            if found is not None:
                model, _ = restore(found[1])
                if model.updates >= updates:
                    await asyncio.sleep(3)  # anything learned twice would show now
                    found = await store.models.load(MODEL)
                    assert found is not None
                    return restore(found[1])[0]
            await asyncio.sleep(0.5)
        raise AssertionError(f"no snapshot with {updates} updates within {wait_s}s")
    finally:
        await store.close()


async def test_outcomes_teach_once_and_a_restarted_learner_resumes(pipeline: Pipeline) -> None:
    bootstrap = pipeline.services.kafka_bootstrap
    worker = pipeline.start_worker()
    first = await decisions_for(pipeline, clicks(120))
    assert first and all(d["context"] for d in first)
    records = outcomes(first)
    forged = json.loads(records[0][1]) | {"offer_id": "never-offered", "outcome": "accepted"}
    # every outcome once, plus redelivered copies of a third of them, and one naming an
    # offer its decision did not make
    await produce(
        bootstrap,
        pipeline.topic("offer-outcomes"),
        [*records, *records[::3], (records[0][0], json.dumps(forged).encode())],
    )
    model = await snapshot(pipeline, len(records))
    assert model.updates == len(records)

    def copies() -> float:  # read after the originals: maybe after the snapshot
        return worker.metric("moments_learning_outcomes_total", result="duplicate")

    assert await once_counted(copies, len(records[::3]), "the copies counted") == len(records[::3])
    # Per offer: the offers made, and each outcome once, only for offers Moments made.
    made = Counter(o["offer_id"] for d in first for o in d["offers"])
    learned = Counter((json.loads(v)["offer_id"], json.loads(v)["outcome"]) for _, v in records)
    for offer, times in made.items():
        assert worker.metric("moments_offers_made_total", offer=offer, channel="web") == times
    for (offer, verdict), times in learned.items():
        assert worker.metric("moments_offer_outcomes_total", offer=offer, channel="web",
                             outcome=verdict) == times, (offer, verdict)  # fmt: skip
    assert worker.metric("moments_offer_outcomes_total", offer="never-offered",
                         channel="web", outcome="accepted") == 0  # fmt: skip
    # The learner reports what it has still to read, as the workers do for touchpoints
    # (a stalled learner had no lag to alert on): here, nothing.
    _, exposition = worker.get("/metrics")
    topic = pipeline.topic("offer-outcomes")
    lags = [line for line in exposition.splitlines()
            if line.startswith("moments_consumer_lag{") and f'topic="{topic}"' in line]  # fmt: skip
    assert lags and all(line.endswith(" 0.0") for line in lags), lags

    # The snapshot is the model: restoring it predicts exactly what learning in order does.
    reference = LinUCBOffers(model.dimension)
    for (_, value), decision in zip(records, first, strict=True):
        body = json.loads(value)
        reward = 1.0 if body["outcome"] == "accepted" else 0.0
        reference.learn_one(decision["context"], body["offer_id"], reward)
    for decision in first[:20]:
        for arm in model.arms:
            assert model.predict_one(decision["context"], arm) == pytest.approx(
                reference.predict_one(decision["context"], arm), abs=1e-9
            )

    # Kill the learner, let outcomes pile up, start another worker: nothing lost or doubled.
    worker.proc.send_signal(signal.SIGKILL)
    worker.proc.wait()
    pipeline.start_worker()
    second = await decisions_for(pipeline, clicks(60, start=1000))
    more = outcomes(second)
    await produce(bootstrap, pipeline.topic("offer-outcomes"), more + records[:10])
    model = await snapshot(pipeline, len(records) + len(more), wait_s=90)
    assert model.updates == len(records) + len(more)


async def test_outcomes_that_do_not_decode_are_dead_lettered_and_the_rest_teach(
    pipeline: Pipeline,
) -> None:
    bootstrap = pipeline.services.kafka_bootstrap
    worker = pipeline.start_worker()
    good = outcomes(await decisions_for(pipeline, clicks(30, start=2000)))
    assert good
    sample = json.loads(good[0][1])
    without_decision = {k: v for k, v in sample.items() if k != "decision_id"}
    bad = [
        (b"bad-json", b"{not json", "malformed JSON"),
        (b"bad-outcome", json.dumps(sample | {"outcome": "loved"}).encode(), "$.outcome"),
        (b"no-decision", json.dumps(without_decision).encode(), "decision_id"),
        # dated far ahead: refused as a touchpoint would be (it was learned and counted)
        (b"ahead", json.dumps(sample | {"ts": "9998-12-31T23:59:59-23:59"}).encode(),
         "in the future - at `$.ts`"),
        # a key given twice: the learner would take the last id, another reader the first
        (b"twice", json.dumps(sample | {"customer_id": "victim"}).encode()[:-1]
         + b', "customer_id": "decoy"}', "which one counts) - at `$.customer_id`"),
    ]  # fmt: skip
    mixed = good[:10] + [(k, v) for k, v, _ in bad] + good[10:]
    await produce(bootstrap, pipeline.topic("offer-outcomes"), mixed)

    letters = await consume_all(bootstrap, pipeline.topic("offer-outcomes-dlq"), len(bad))
    assert len(letters) == len(bad)
    sent = {key: (value, hint) for key, value, hint in bad}
    for letter in letters:  # keyed by customer: in order within a partition only
        headers = {k: v.decode() for k, v in letter.headers}  # type: ignore[attr-defined]
        value, hint = sent.pop(letter.key)  # type: ignore[attr-defined]
        assert letter.value == value  # type: ignore[attr-defined]
        assert headers["source-topic"] == pipeline.topic("offer-outcomes")
        assert int(headers["source-offset"]) >= 0
        assert headers["error"].startswith("invalid: ") and hint in headers["error"], headers
    model = await snapshot(pipeline, len(good))
    assert model.updates == len(good)  # the bad ones in between stopped nothing

    def invalid() -> float:  # counted a moment after Kafka took the letters
        return worker.metric("moments_learning_outcomes_total", result="invalid")

    assert await once_counted(invalid, len(bad), "the letters counted") == len(bad)


async def test_only_the_first_offer_of_a_decision_teaches_and_both_are_counted(
    pipeline: Pipeline,
) -> None:
    """A site reports each offer it showed. The second, in a lower place, is looked at
    less: learned as if shown first, its outcomes sank the offers ranked below the first
    (position bias). It is counted, by offer too, and teaches nothing."""
    bootstrap = pipeline.services.kafka_bootstrap
    worker = pipeline.start_worker()
    decided = [d for d in await decisions_for(pipeline, clicks(40, start=3000))
               if len(d["offers"]) >= 2]  # fmt: skip
    assert decided
    ts = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    records = []
    for d in decided:  # both offers shown dismissed: the same outcome of each
        for offer in d["offers"][:2]:
            body = {"decision_id": d["decision_id"], "customer_id": d["customer_id"],
                    "offer_id": offer["offer_id"], "outcome": "dismissed", "ts": ts}  # fmt: skip
            records.append((d["customer_id"].encode(), json.dumps(body).encode()))
    await produce(bootstrap, pipeline.topic("offer-outcomes"), records + records[:3])
    model = await snapshot(pipeline, len(decided))
    assert model.updates == len(decided)  # the first offer's outcome once, the repeats not
    assert worker.metric("moments_learning_outcomes_total", result="learned") == len(decided)

    # what teaches nothing (a lower offer's, a repeat) may be counted after the snapshot
    def seen(result: str) -> float:
        return worker.metric("moments_learning_outcomes_total", result=result)

    def dismissed() -> float:  # each offer's count with it
        return worker.metric("moments_outcomes_total", outcome="dismissed")

    lower = await once_counted(lambda: seen("not_first_offer"), len(decided), "lower offers")
    assert lower == len(decided)
    assert await once_counted(lambda: seen("duplicate"), 3, "the repeats counted") == 3
    await once_counted(dismissed, len(records), "the dismissals counted")
    shown = Counter(o["offer_id"] for d in decided for o in d["offers"][:2])
    for offer, times in shown.items():
        assert worker.metric("moments_offer_outcomes_total", offer=offer, channel="web",
                             outcome="dismissed") == times, offer  # fmt: skip
    assert worker.metric("moments_outcomes_total", outcome="dismissed") == len(records)


async def test_an_outcome_ahead_of_its_decision_is_learned_once_sent_back(
    pipeline: Pipeline,
) -> None:
    """The decision's context is not in Redis yet when its outcome is read (the process
    that took it was waiting on Redis): the outcome is set aside, not lost, and sent back
    it teaches once."""
    bootstrap = pipeline.services.kafka_bootstrap
    worker = pipeline.start_worker()
    decided = await decisions_for(pipeline, clicks(20, start=4000))
    assert len(decided) >= 2
    late, *on_time = decided
    store = pipeline.store()
    client = aioredis.Redis.from_url(pipeline.services.redis_url)
    try:
        context_key = store._keys.for_customer(late["customer_id"]).context(late["decision_id"])
        context = await client.get(context_key)
        assert context is not None
        await client.delete(context_key)  # not recorded yet
        records = outcomes(decided)
        await produce(bootstrap, pipeline.topic("offer-outcomes"), records)
        (letter,) = await consume_all(bootstrap, pipeline.topic("offer-outcomes-dlq"), 1)
        assert letter.value == records[0][1]  # type: ignore[attr-defined]
        error = dict(letter.headers)["error"].decode()  # type: ignore[attr-defined]
        assert error.startswith("no_context: ")
        model = await snapshot(pipeline, len(on_time))
        assert model.updates == len(on_time)

        def set_aside() -> float:  # counted a moment after Kafka took the letter
            return worker.metric("moments_learning_outcomes_total", result="no_context")

        assert await once_counted(set_aside, 1, "the outcome set aside counted") == 1

        await client.set(context_key, context, ex=3600)  # recorded at last
        sent = dead_letters(pipeline, "--source", "offer-outcomes", "--reason", "no_context",
                            "--redrive")  # fmt: skip
        assert sent["redrive"]["redriven"] == 1
        model = await snapshot(pipeline, len(records))
        assert model.updates == len(records)  # learned, once
    finally:
        await client.aclose()
        await store.close()
