"""`moments rebuild` replays the topics into an empty Redis and gets the live state back."""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from agents.decision_plan import worth_watching
from agents.letters import SourceRecord, dead_letter_headers
from agents.risk_watch import decode_snapshot
from feature_store import LAYOUT, FeatureStore, StoreConfig
from feature_store.facts import ts_ms
from feature_store.rooms import CURRENCY_ROOM
from schemas import CustomerErasure, decode_touchpoint, encode_erasure
from streams.rebuild import rebuild
from streams.rebuild_report import RebuildError
from streams.services import LocalRedis
from streams.settings import Settings
from streams.topics import ensure_topics, topic_partitions
from tests.integration import forked_starts
from tests.integration.conftest import SECRET, Pipeline
from tests.integration.test_api_support import (
    DEV_AUTH,
    call,
    eventually,
    keys_tagged,
    left_by_erasure,
    read_to_end,
)
from tests.integration.test_scale_out import activity
from tests.integration.test_service_restarts import all_handled
from tests.integration.test_touchpoints_pipeline import (
    CUSTOMERS,
    good_events,
    malformed_records,
    produce,
)

pytestmark = pytest.mark.integration


def without_risk(raw: dict[str, Any]) -> dict[str, Any]:
    """All but the churn-risk bookkeeping in no topic: the pending snapshot (taken again,
    compared below) and when the band was stored (live: when it last changed; rebuilt: at
    the last scored touchpoint). The band itself is compared. Nor the marks 'b:' a live
    burst's first touchpoint keeps of the one before it (facts.py mark_bursts): they
    follow the batches Kafka handed the worker, which no topic records (a rebuild's
    batches are its own), and serve only that batch read again; a rebuild writes none
    (checked below)."""
    out = dict(raw)
    left_out = ("risk_snapshot", "risk_snapshot@", "risk_band@")
    out["profile"] = {k: v for k, v in raw["profile"].items() if k not in left_out}
    out["seen"] = [s for s in raw["seen"] if not s.startswith(("r:", "b:"))]
    return out


def with_a_budget(path: Path) -> Path:
    """The shipped catalogue, with a daily budget on one offer."""
    shipped = Path(Settings().catalogue_path).read_text()
    offer = 'offer_id = "electronics-bundle"\n'
    limited = shipped.replace(offer, offer + "daily_limit = 1000000\n")
    assert limited != shipped
    path.write_text(limited)
    return path


def unrated_purchases(customer: str, n: int) -> list[dict[str, Any]]:
    """A customer's purchases in ``n`` currencies with no rate (as a producer mapping a
    country code into the currency would send), half an hour old."""
    start = datetime.now(UTC) - timedelta(minutes=30)
    codes = [f"X{a}{b}" for a in "ABCDEF" for b in "ABCDEF"][:n]
    return [{"type": "purchase", "event_id": f"unrated-{i}", "customer_id": customer,
             "ts": (start + timedelta(seconds=i)).isoformat().replace("+00:00", "Z"),
             "order_id": f"u{i}", "amount": 3.5, "currency": code}
            for i, code in enumerate(codes)]  # fmt: skip


def card_calls(customers: list[str]) -> list[dict[str, Any]]:
    """Outbound calls made from an alert card (feature_store/card_calls.py)."""
    at = (datetime.now(UTC) - timedelta(minutes=90)).isoformat().replace("+00:00", "Z")
    return [{"type": "call", "event_id": f"card-call-{c}", "customer_id": c, "ts": at,
             "status": "started", "direction": "outbound", "reason": "sales",
             "intervention_id": "a-retention-card"} for c in customers]  # fmt: skip


async def test_rebuild_into_empty_redis_equals_live_state(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    bootstrap = pipeline.services.kafka_bootstrap
    # one offer with a daily budget (never used up here): its counts are rebuilt too
    env = {"MOMENTS_CATALOGUE_PATH": str(with_a_budget(tmp_path / "offers.toml")),
           # half the interventions held out: their cool-downs are rebuilt as well
           "MOMENTS_INTERVENTION_CONTROL_PERCENT": "50",
           # the touchpoints are one to two hours old: they still raise alerts
           "MOMENTS_INTERVENTION_MAX_AGE_S": "86400",
           # purchases in currencies with no rate fill a customer's room of them
           "MOMENTS_CURRENCY": "EUR", "MOMENTS_EXCHANGE_RATES": "USD=0.92"}  # fmt: skip
    worker = pipeline.start_worker(**env)
    events = good_events(3000, seed=31) + unrated_purchases(CUSTOMERS[1], CURRENCY_ROOM + 8)
    events += card_calls(CUSTOMERS[2:5])  # counted against the call caps, live and rebuilt
    records = [(e["customer_id"].encode(), json.dumps(e).encode()) for e in events]
    records += records[:200]  # redelivered
    records += [(b"bad", value) for value, _ in malformed_records(20)]
    await produce(bootstrap, pipeline.topic("touchpoints"), records)
    live = pipeline.store()
    deadline = time.monotonic() + 90
    everything = activity(events)
    while time.monotonic() < deadline:
        done = sum([int((await live.raw(c))["profile"].get("n", 0)) for c in CUSTOMERS])
        if done >= everything and worker.metric("moments_dead_letters_total") >= 20:
            break
        await asyncio.sleep(0.5)
    await all_handled(pipeline)  # the last decisions sent and confirmed
    kinds = ("save_desk", "retention_call", "vip_attention", "service_recovery", "win_back")
    held = sum(worker.metric("moments_interventions_held_out_total", kind=k) for k in kinds)
    raised = sum(worker.metric("moments_decisions_total", kind=k, channel="contact_centre")
                 for k in kinds)  # fmt: skip
    assert held > 0 and raised > 0, (held, raised)
    worker.stop()
    gone, *kept = CUSTOMERS
    # an event whose decision failed after its features were updated: it was applied
    # live, so the rebuild applies it too (written as a worker dead-letters it)
    applied = next(e for e in events[200:] if e["customer_id"] != gone)
    (source,) = [r for r in await read_to_end(bootstrap, pipeline.topic("touchpoints"))
                 if r.value == json.dumps(applied).encode()]  # fmt: skip
    origin = SourceRecord(source.topic, source.partition, source.offset, source.key, source.value)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            pipeline.topic("touchpoints-dlq"), source.value, key=source.key,
            headers=dead_letter_headers(origin, "decision failed: RuntimeError: boom"),
        )  # fmt: skip
    finally:
        await producer.stop()
    # one customer asks to be erased: the API removes them and records it in Kafka
    api = pipeline.start_api(**env)
    assert (await live.raw(gone))["profile"]
    erased = await call("DELETE", f"{api.url}/v1/customers/{gone}", headers=DEV_AUTH)
    assert erased.status == 200 and erased.json["blocked"], erased
    api.stop()
    tag = live.pseudonym(gone)
    tombstone = f"{pipeline.prefix.rstrip('-')}:{{{tag}}}:erased"

    target = LocalRedis(tmp_path / "rebuilt", appendonly=False)
    target.start()
    rebuilt = FeatureStore.from_url(
        target.url,
        StoreConfig(secret=SECRET.encode(), prefix=pipeline.prefix.rstrip("-")),
    )
    try:
        command = ["rebuild", "--redis-url", target.url]
        # started anew, as an operator starts it (the later runs are forked: faster)
        result = forked_starts.run(command, {**pipeline.env(0), **env}, timeout=300, anew=True)
        assert result.returncode == 0, result.stderr
        # the worker marked the live Redis, empty when it started; the rebuild its target
        assert await rebuilt.layout.read() == await live.layout.read() == str(LAYOUT)
        today = datetime.now(UTC).date()
        live_spent = await live.budgets.spent(today)
        assert live_spent["electronics-bundle"] > 0
        assert await rebuilt.budgets.spent(today) == live_spent
        assert "20 invalid skipped" in result.stdout
        assert "1 customers kept erased" in result.stdout
        # every touchpoint read is in one count (the erased customer's were in none)
        line = re.search(r"rebuilt from (\d+) touchpoints \(([^)]*)\)", result.stdout)
        assert line is not None and " of erased customers" in line[2], result.stdout
        assert sum(int(part.split()[0]) for part in line[2].split(", ")) == int(line[1])
        # the erased customer's touchpoints and decisions are all still in Kafka, and
        # none of them brought the profile back: only the tombstone is there
        # (and the withdrawals its erasure kept, by name, from the erasure record)
        withdrew = erased.json["withdrawals_kept"]
        assert await keys_tagged(target.url, tag) == left_by_erasure(tombstone, bool(withdrew))
        assert await rebuilt.withdrawals_kept(gone) == withdrew
        assert await rebuilt.read_for_decisions([gone]) == [(True, None)]
        for customer in kept:
            # everything equal: features, windows, recent list, contact history, and the
            # remembered event ids with their decided marks, and the churn-risk band as
            # of the last scored touchpoint (so the next crossing raises its call); only
            # the pending feature snapshot is in no topic, and is taken again
            rebuilt_raw, live_raw = await rebuilt.raw(customer), await live.raw(customer)
            assert live_raw["profile"]["risk_band"] in ("low", "high"), customer
            assert not [s for s in rebuilt_raw["seen"] if s.startswith("b:")], customer
            mine, theirs = without_risk(rebuilt_raw), without_risk(live_raw)
            differ = {k: (mine["profile"].get(k), theirs["profile"].get(k))
                      for k in mine["profile"].keys() | theirs["profile"].keys()
                      if mine["profile"].get(k) != theirs["profile"].get(k)}  # fmt: skip
            assert mine == theirs, (customer, differ)
        unrated = [k for k in (await live.raw(CUSTOMERS[1]))["profile"]
                   if k.startswith("spend_unconverted:")]  # fmt: skip
        assert len(unrated) == CURRENCY_ROOM, unrated
        # each customer gets a pending churn-risk snapshot again, as of the last
        # touchpoint the live pipeline scores, with the same features as the live one
        scored: dict[str, int] = {}
        for sent in events:
            event = decode_touchpoint(json.dumps(sent))
            if worth_watching(event):
                scored[event.customer_id] = max(scored.get(event.customer_id, 0), ts_ms(event.ts))
        assert f"{len(set(scored) - {gone})} churn-risk snapshots and " in result.stdout
        for customer in kept:
            rebuilt_snapshot = decode_snapshot(
                (await rebuilt.raw(customer))["profile"]["risk_snapshot"]
            )
            live_snapshot = decode_snapshot((await live.raw(customer))["profile"]["risk_snapshot"])
            assert rebuilt_snapshot.ts_ms == scored[customer], customer
            assert rebuilt_snapshot.x.keys() == live_snapshot.x.keys()
        # and it refuses to merge into a Redis that is not empty
        again = forked_starts.run(command, pipeline.env(0), timeout=300)
        assert again.returncode == 2 and "--force" in again.stderr
        # merged again with --force: every update is idempotent, the budgets included
        merged = forked_starts.run([*command, "--force"], {**pipeline.env(0), **env}, 300)
        assert merged.returncode == 0, merged.stderr
        assert await rebuilt.budgets.spent(today) == live_spent
        for customer in kept[:3]:
            assert without_risk(await rebuilt.raw(customer)) == without_risk(
                await live.raw(customer)
            ), customer
    finally:
        await rebuilt.close()
        await live.close()
        target.stop()


async def test_rebuild_stops_at_an_unreadable_erasure_record(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """Skipping it could bring an erased customer back, so nothing is replayed after it."""
    bootstrap = pipeline.services.kafka_bootstrap
    await ensure_topics(Settings.from_env(pipeline.env(0)))  # as the workers do at start
    event = good_events(1, seed=5)[0]
    await produce(bootstrap, pipeline.topic("touchpoints"),
                  [(event["customer_id"].encode(), json.dumps(event).encode())])  # fmt: skip
    await produce(bootstrap, pipeline.topic("customer-erasures"), [(b"x", b'{"subject": 1}')])
    target = LocalRedis(tmp_path / "rebuilt", appendonly=False)
    target.start()
    try:
        result = forked_starts.run(
            ["rebuild", "--redis-url", target.url], pipeline.env(0), timeout=300
        )
        assert result.returncode == 2, result.stderr
        assert "is not an erasure record" in result.stderr and "offset 0" in result.stderr
        prefix = pipeline.prefix.rstrip("-")
        marks = [f"{prefix}:key-secret", f"{prefix}:layout"]
        assert sorted(await keys_tagged(target.url, "")) == marks  # no touchpoint replayed
    finally:
        target.stop()


async def test_rebuild_refuses_when_retention_deleted_erasure_records(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """Moments keeps erasures for good; when retention deleted some all the same, the
    rebuild stops and says so, unless the operator accepts it."""
    bootstrap = pipeline.services.kafka_bootstrap
    await ensure_topics(Settings(kafka_bootstrap=bootstrap, topic_prefix=pipeline.prefix))
    topic = pipeline.topic("customer-erasures")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await admin.start()
    await producer.start()
    try:
        (described,) = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic)]
        )
        configs = {entry[0]: entry[1] for entry in described.resources[0][4]}
        assert configs["retention.ms"] == "-1"  # as ensure_topics creates it
        sent = []
        for customer in ("erased-long-ago", "erased-lately"):  # one key: one partition
            erasure = CustomerErasure(customer_id=customer, subject="s", ts=datetime.now(UTC))
            sent.append(await producer.send_and_wait(topic, encode_erasure(erasure), key=b"k"))
        partition = sent[0].partition
        # the older record goes, as a retention limit would make it go
        await admin.delete_records({TopicPartition(topic, partition): RecordsToDelete(1)})
    finally:
        await producer.stop()
        await admin.close()

    target = LocalRedis(tmp_path / "rebuilt", appendonly=False)
    target.start()
    command = ["rebuild", "--redis-url", target.url]
    try:
        refused = forked_starts.run(command, pipeline.env(0), timeout=300)
        assert refused.returncode == 2, refused.stderr
        assert f"partition {partition} from offset 1" in refused.stderr
        assert "--accept-lost-erasures" in refused.stderr
        assert await keys_tagged(target.url, "") == []
        accepted = forked_starts.run(
            [*command, "--accept-lost-erasures"], pipeline.env(0), timeout=300
        )
        assert accepted.returncode == 0, accepted.stderr
        assert "1 customers kept erased" in accepted.stdout  # the one still in the topic
    finally:
        target.stop()


async def test_a_customer_erased_while_the_rebuild_runs_stays_erased(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """The live API keeps erasing during a rebuild: an erasure recorded after the rebuild
    read the erasures, while it replays that customer's touchpoints, still wins."""
    bootstrap = pipeline.services.kafka_bootstrap
    events = good_events(60, seed=9)
    records = [(e["customer_id"].encode(), json.dumps(e).encode()) for e in events]
    settings = Settings.from_env(pipeline.env(0))
    await ensure_topics(settings)  # as the workers do when they start
    await produce(bootstrap, pipeline.topic("touchpoints"), records)
    late = events[0]["customer_id"]
    target = LocalRedis(tmp_path / "rebuilt", appendonly=False)
    target.start()
    store = FeatureStore.from_url(
        target.url, StoreConfig(secret=SECRET.encode(), prefix=pipeline.prefix.rstrip("-"))
    )
    apply_facts = store.apply_facts
    erased_meanwhile = []

    async def erase_meanwhile(facts: Any, *ran: Any) -> Any:  # the API erases `late` mid-replay
        if not erased_meanwhile:
            record = CustomerErasure(customer_id=late, subject="s", ts=datetime.now(UTC))
            await produce(bootstrap, pipeline.topic("customer-erasures"),
                          [(late.encode(), encode_erasure(record))])  # fmt: skip
            erased_meanwhile.append(late)
        return await apply_facts(facts, *ran)

    store.apply_facts = erase_meanwhile  # type: ignore[method-assign]
    try:
        report = await rebuild(settings, store)
        assert erased_meanwhile == [late] and report.erasures == 1
        tag = store.pseudonym(late)
        # (the withdrawals its replayed touchpoints had made kept beside it, if any)
        withdrew = bool(await store.withdrawals_kept(late))
        assert await keys_tagged(target.url, tag) == left_by_erasure(
            f"{pipeline.prefix.rstrip('-')}:{{{tag}}}:erased", withdrew
        )
        kept = {e["customer_id"] for e in events} - {late}
        assert all([await store.read(c) is not None for c in kept])
    finally:
        await store.close()
        target.stop()


@pytest.mark.parametrize(
    "command",
    [["rebuild"], ["lift"], ["dead-letters"]],
    ids=["rebuild", "lift", "dead-letters"],
)
async def test_a_mistyped_topic_prefix_is_refused_and_creates_no_topic(
    pipeline: Pipeline, command: list[str]
) -> None:
    """Looking the topics up by subscribing made the broker create each one (it creates
    topics asked for by default), and the commands read them empty and said all was well."""
    env = pipeline.env(0) | {"MOMENTS_TOPIC_PREFIX": f"mistyped-{command[0]}-"}
    if command == ["rebuild"]:  # into an empty database of the tests' Redis
        command = [*command, "--redis-url", pipeline.services.redis_url.rsplit("/", 1)[0] + "/13"]
    result = await asyncio.to_thread(forked_starts.run, command, env, 300)
    assert result.returncode == 2, result.stderr
    assert f"topic mistyped-{command[0]}-" in result.stderr and "does not exist" in result.stderr
    admin = AIOKafkaAdminClient(bootstrap_servers=pipeline.services.kafka_bootstrap)
    await admin.start()
    try:
        assert [t for t in await admin.list_topics() if t.startswith("mistyped-")] == []
    finally:
        await admin.close()


async def test_an_unreadable_erasure_written_while_the_rebuild_ran_says_what_was_replayed(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """Read again at the end, the erasures hold one Moments cannot read: everything was
    replayed, and the target holds it; the error said nothing was."""
    bootstrap = pipeline.services.kafka_bootstrap
    settings = Settings.from_env(pipeline.env(0))
    await ensure_topics(settings)
    event = good_events(1, seed=11)[0]
    await produce(bootstrap, pipeline.topic("touchpoints"),
                  [(event["customer_id"].encode(), json.dumps(event).encode())])  # fmt: skip
    target = LocalRedis(tmp_path / "rebuilt", appendonly=False)
    target.start()
    store = FeatureStore.from_url(
        target.url, StoreConfig(secret=SECRET.encode(), prefix=pipeline.prefix.rstrip("-"))
    )
    apply_facts, written = store.apply_facts, []

    async def unreadable_meanwhile(facts: Any, *ran: Any) -> Any:
        if not written:
            await produce(bootstrap, pipeline.topic("customer-erasures"), [(b"x", b"{}")])
            written.append(True)
        return await apply_facts(facts, *ran)

    store.apply_facts = unreadable_meanwhile  # type: ignore[method-assign]
    try:
        with pytest.raises(RebuildError, match="the topics were replayed") as raised:
            await rebuild(settings, store)
        assert "--force" in str(raised.value) and "nothing was replayed" not in str(raised.value)
        assert await store.read(event["customer_id"]) is not None
    finally:
        await store.close()
        target.stop()


@pytest.mark.parametrize("missing", ["risk-examples", "offer-outcomes"])
async def test_a_topic_missing_is_found_before_anything_is_written(
    pipeline: Pipeline, tmp_path: Path, missing: str
) -> None:
    """The risk examples are read last: their topic missing was found once every
    touchpoint had been written, leaving the target half rebuilt. (The outcomes are read
    after the touchpoints too.)"""
    from streams.topic_replay import TopicMissing

    env = pipeline.env(0) | {"MOMENTS_TOPIC_PREFIX": f"{pipeline.prefix}partial-{missing}-"}
    settings = Settings.from_env(env)
    await ensure_topics(settings)
    event = good_events(1, seed=12)[0]
    await produce(pipeline.services.kafka_bootstrap, settings.topic("touchpoints"),
                  [(event["customer_id"].encode(), json.dumps(event).encode())])  # fmt: skip
    admin = AIOKafkaAdminClient(bootstrap_servers=pipeline.services.kafka_bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([settings.topic(missing)])
    finally:
        await admin.close()

    async def gone() -> bool:  # a deletion reaches the brokers' metadata a little later
        return not await topic_partitions(settings.kafka_bootstrap, settings.topic(missing))

    await eventually(gone, "the deleted topic to leave the metadata", within=30)
    target = LocalRedis(tmp_path / "rebuilt", appendonly=False)
    target.start()
    config = StoreConfig(secret=SECRET.encode(), prefix=settings.redis_prefix)
    store = FeatureStore.from_url(target.url, config)
    try:
        with pytest.raises(TopicMissing, match=f"{re.escape(settings.topic(missing))} does not"):
            await rebuild(settings, store)
        assert await keys_tagged(target.url, "") == []
    finally:
        await store.close()
        target.stop()
