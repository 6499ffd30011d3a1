"""A customer whose stored data Redis holds in a form Moments cannot read (a key of
another type, a count that is no number, a time no date can hold, bytes that are not
UTF-8, a decision's context cut short or in another shape: a tool's, a bug's, another
version's), one corruption at a time, against every endpoint that reads the customer,
on a real API, Kafka and Redis: none answers 500. The profile and the export answer what
can be read and name what could not (``unreadable``), recommendations fall back, and
the erasure removes every key, blocks the id and publishes its record, with a receipt
that tells the truth.

The customer's full history (touchpoints applied by a worker, decisions, a claimed
outcome) is made once, through the API and a worker, and copied key by key (DUMP and
RESTORE, under each case's customer's keyed hash) for each case.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from feature_store.keys import KEY_KINDS, CustomerKeys, KeySet
from streams.services import Services
from tests.integration.conftest import SECRET, Pipeline, Worker
from tests.integration.test_api_support import (
    DEV_AUTH,
    call,
    event,
    eventually,
    keys_tagged,
    left_by_erasure,
    outcome,
    read_to_end,
)

pytestmark = pytest.mark.integration

TEMPLATE = "corrupt-template"
IMPOSSIBLE_MS = "-100000000000000000000"  # -1e20 ms: no date can hold it


@pytest.fixture(scope="module")
def deployment(
    kafka_redis: Services, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Pipeline, Worker]]:
    pipeline = Pipeline(kafka_redis, Path(tmp_path_factory.mktemp("corrupt")))
    try:
        pipeline.start_worker()
        api = pipeline.start_api(MOMENTS_CONTROL_PERCENT="0", MOMENTS_API_BUDGET_MS="5000")
        yield pipeline, api
    finally:
        pipeline.stop()


def keys_of(pipeline: Pipeline, customer_id: str) -> KeySet:
    return CustomerKeys(SECRET.encode(), pipeline.prefix.rstrip("-")).for_customer(customer_id)


@pytest.fixture(scope="module")
async def template(deployment: tuple[Pipeline, Worker]) -> dict[str, Any]:
    """A customer with a full history: touchpoints applied, a consent withdrawn,
    decisions (with their contexts), an outcome claimed; their export."""
    pipeline, api = deployment
    c = f"{pipeline.prefix}{TEMPLATE}"
    events = [
        event("web_click", c, f"{c}-e1", minutes_ago=30, category="books"),
        event("purchase", c, f"{c}-e2", minutes_ago=20, amount=42.0),
        event("email", c, f"{c}-e3", minutes_ago=10, action="opened"),
        event("consent", c, f"{c}-e4", minutes_ago=8, channel="sms", granted=False),
    ]
    assert (await call("POST", f"{api.url}/v1/events", headers=DEV_AUTH, body=events)).status == 202

    async def applied() -> bool:
        reply = await call("GET", f"{api.url}/v1/customers/{c}", headers=DEV_AUTH)
        return reply.status == 200 and reply.json["features"]["events"] == len(events)

    await eventually(applied, "the worker to apply the events")
    answers = []
    for _ in range(3):
        rec = await call("GET", f"{api.url}/v1/customers/{c}/recommendations", headers=DEV_AUTH)
        assert rec.status == 200, rec
        answers.append(rec.json)
    shown = next(a for a in answers if a["offers"])
    claimed = outcome(shown["decision_id"], c, shown["offers"][0]["offer_id"])
    assert (await call("POST", f"{api.url}/v1/outcomes", headers=DEV_AUTH,
                       body=claimed)).status == 202  # fmt: skip

    async def everything() -> dict[str, Any] | None:
        reply = await call("GET", f"{api.url}/v1/customers/{c}/export", headers=DEV_AUTH)
        body: dict[str, Any] = reply.json
        return body if body["outcomes"] and len(body["decisions"]) >= 3 else None

    return await eventually(everything, "the decisions and the outcome kept")


async def copy_customer(redis_url: str, source: KeySet, target: KeySet) -> list[str]:
    """Copy every key of ``source`` to ``target``'s names; the names of the copies."""
    client = aioredis.Redis.from_url(redis_url)
    made = []
    try:
        names = await keys_tagged(redis_url, source.tag)
        for name in names:
            dumped = await client.dump(name)
            assert dumped is not None
            copy = name.replace(source.tag, target.tag)
            await client.restore(copy, 0, dumped, replace=True)
            made.append(copy)
    finally:
        await client.aclose()
    return made


Corruption = Callable[[aioredis.Redis, KeySet], Awaitable[None]]


def another_type(kind: str) -> Corruption:
    async def corrupt(r: aioredis.Redis, k: KeySet) -> None:
        await r.delete(getattr(k, kind))
        await r.set(getattr(k, kind), "not what it should be")

    return corrupt


def field(kind: str, name: str, value: bytes | str) -> Corruption:
    async def corrupt(r: aioredis.Redis, k: KeySet) -> None:
        await r.hset(getattr(k, kind), name, value)

    return corrupt


def every_value(kind: str, value: str) -> Corruption:
    async def corrupt(r: aioredis.Redis, k: KeySet) -> None:
        fields = await r.hkeys(getattr(k, kind))
        await r.hset(getattr(k, kind), mapping=dict.fromkeys(fields, value))

    return corrupt


def member(kind: str, name: bytes | str, score: float) -> Corruption:
    async def corrupt(r: aioredis.Redis, k: KeySet) -> None:
        await r.zadd(getattr(k, kind), {name: score})

    return corrupt


def every_score(kind: str, score: float) -> Corruption:
    async def corrupt(r: aioredis.Redis, k: KeySet) -> None:
        members = await r.zrange(getattr(k, kind), 0, -1)
        await r.zadd(getattr(k, kind), dict.fromkeys(members, score))

    return corrupt


def contexts(value: Callable[[bytes], bytes] | None) -> Corruption:
    """Every kept decision context rewritten (``None``: made a hash)."""

    async def corrupt(r: aioredis.Redis, k: KeySet) -> None:
        for name in [n async for n in r.scan_iter(match=k.context("*").replace("{", "[{]"))]:
            held = await r.get(name)
            assert held is not None
            await r.delete(name)
            if value is None:
                await r.hset(name, "a", "b")
            else:
                await r.set(name, value(held))

    return corrupt


def tombstone(value: bytes | str) -> Corruption:
    async def corrupt(r: aioredis.Redis, k: KeySet) -> None:
        await r.set(k.tombstone, value)

    return corrupt


CORRUPTIONS: dict[str, Corruption] = {
    **{f"type:{kind}": another_type(kind) for kind in KEY_KINDS},
    "type:context": contexts(None),
    "count:profile": field("profile", "n", "many"),
    "count:purchases": field("profile", "purchases", "1.5"),
    "count:windows": every_value("windows", "lots"),
    "count:contacts": every_value("contacts", "x"),
    "time:first_seen": field("profile", "first_seen", IMPOSSIBLE_MS),
    "time:last_seen": field("profile", "last_seen", IMPOSSIBLE_MS),
    "utf8:profile": field("profile", "timezone", b"\xff\xfe"),
    "utf8:optouts": field("optouts", "consent:sms", b"\xff"),
    "time:seen": every_score("seen", -1e20),
    "time:decisions": every_score("decisions", -1e20),
    "time:decision_index": every_score("decision_index", -1e20),
    "time:outcome_times": every_score("outcome_times", -1e20),
    "form:recent": member("recent", "not|a touchpoint", 1.0),
    "time:recent": member("recent", f"{IMPOSSIBLE_MS}|web_click|x", 1.0),
    "utf8:recent": member("recent", b"\xff|web_click|x", 1.0),
    "form:outcomes": field("outcomes", "no-colons", "?"),
    "json:context": contexts(lambda held: held[: len(held) // 2]),
    "shape:context": contexts(lambda held: b'["not", "a", "decision"]'),
    "utf8:context": contexts(lambda held: b"\xff" + held),
    "time:tombstone": tombstone(IMPOSSIBLE_MS),
    "form:tombstone": tombstone("yesterday"),
}


# What the profile and the export name unreadable, per corruption (none: all was read;
# a tombstone, whatever it holds, says erased: no profile)
FEATURES, DECISIONS = {"features"}, {"recent_decisions"}
UNREADABLE: dict[str, tuple[set[str] | None, set[str]]] = {
    "count:contacts": (FEATURES, {"profile"}),
    "count:profile": (FEATURES, {"profile"}),
    "count:purchases": (FEATURES, {"profile"}),
    "count:windows": (FEATURES, {"profile"}),
    "form:outcomes": (set(), set()),  # shown as it is
    "form:recent": (FEATURES, {"profile"}),
    "form:tombstone": (None, {"erased_at"}),
    "json:context": (DECISIONS, {"decisions", "profile"}),
    "shape:context": (DECISIONS, {"decisions", "profile"}),
    "time:decision_index": (set(), set()),  # the decision's own time is listed
    "time:decisions": (set(), {"decision_ids"}),
    "time:first_seen": (FEATURES, {"profile"}),
    "time:last_seen": (FEATURES, {"profile"}),
    "time:outcome_times": (set(), {"outcomes"}),
    "time:recent": (FEATURES, {"profile"}),
    "time:seen": (set(), {"events_applied"}),
    "time:tombstone": (None, {"erased_at"}),
    "type:contacts": (FEATURES, {"stored.contacts", "profile"}),
    "type:context": (DECISIONS, {"decisions", "profile"}),
    "type:decision_index": (set(), {"decision_ids"}),
    "type:decisions": (DECISIONS, {"decision_ids", "profile"}),
    "type:optouts": (FEATURES, {"stored.optouts", "profile"}),
    "type:outcome_times": (set(), {"outcomes"}),
    "type:outcomes": (set(), {"outcomes"}),
    "type:profile": (FEATURES, {"stored.profile", "profile"}),
    "type:recent": (FEATURES, {"stored.recent_touchpoints", "profile"}),
    "type:seen": (set(), {"events_applied"}),
    "type:windows": (FEATURES, {"stored.windows", "profile"}),
    # read with U+FFFD for the bytes that are not UTF-8 (the export shows them so)
    "utf8:context": (DECISIONS, {"decisions", "profile"}),
    "utf8:optouts": (FEATURES, {"profile"}),
    "utf8:profile": (FEATURES, {"profile"}),
    "utf8:recent": (FEATURES, {"profile"}),
}

# the corruptions that make recommendations fall back: what the decision reads (the
# profile, windows, contacts, withdrawals) or writes (its lists, the contact's
# touchpoint); the others are decided as usual (a tombstone: as for an erased customer)
FALLBACK = {
    "count:contacts", "count:profile", "count:purchases", "count:windows",
    "time:first_seen", "time:last_seen", "utf8:optouts", "utf8:profile",
    *(f"type:{kind}" for kind in ("contacts", "decision_index", "decisions", "optouts",
                                  "profile", "recent", "seen", "windows")),
}  # fmt: skip


async def erasure_records(pipeline: Pipeline, customer_id: str) -> list[dict[str, Any]]:
    records = await read_to_end(pipeline.services.kafka_bootstrap,
                                pipeline.topic("customer-erasures"))  # fmt: skip
    return [json.loads(r.value) for r in records if r.key == customer_id.encode()]


@pytest.fixture
async def admin(kafka_redis: Services) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(kafka_redis.redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
async def test_a_corrupt_customer_is_answered_and_erased(
    deployment: tuple[Pipeline, Worker],
    template: dict[str, Any],
    admin: aioredis.Redis,
    corruption: str,
) -> None:
    pipeline, api = deployment
    customer = f"{pipeline.prefix}case-{corruption}"
    keys = keys_of(pipeline, customer)
    source = keys_of(pipeline, f"{pipeline.prefix}{TEMPLATE}")
    copied = await copy_customer(pipeline.services.redis_url, source, keys)
    assert len(copied) >= 13  # every kind of key, and the decisions' contexts
    await CORRUPTIONS[corruption](admin, keys)
    base = f"{api.url}/v1/customers/{customer}"
    tombstoned = corruption.endswith(":tombstone")

    in_profile, in_export = UNREADABLE[corruption]
    profile = await call("GET", base, headers=DEV_AUTH)
    if in_profile is None:  # a tombstone, whatever it holds, says erased
        assert profile.status == 404, profile
    else:
        assert profile.status == 200, profile
        assert profile.json["customer_id"] == customer
        assert set(profile.json["unreadable"]) == in_profile, profile.json["unreadable"]
        if in_profile != FEATURES:
            assert profile.json["features"] == template["profile"]["features"]
        if in_profile != DECISIONS:
            assert len(profile.json["recent_decisions"]) == len(template["decisions"])

    export = await call("GET", f"{base}/export", headers=DEV_AUTH)
    assert export.status == 200, export
    body = export.json
    assert set(body["unreadable"]) == in_export, body["unreadable"]
    # what could be read is answered: the events applied, the outcomes claimed
    if "events_applied" not in in_export:
        assert body["events_applied"] == template["events_applied"]
    if "outcomes" not in in_export:
        assert {o["decision_id"] for o in body["outcomes"]} >= {
            o["decision_id"] for o in template["outcomes"]}  # fmt: skip

    recommended = await call("GET", f"{base}/recommendations", headers=DEV_AUTH)
    assert recommended.status == 200, recommended
    assert recommended.json["fallback"] is (corruption in FALLBACK), recommended.json

    before = datetime.now(UTC)
    erased = await call("DELETE", base, headers=DEV_AUTH)
    assert erased.status == 200, erased
    receipt = erased.json
    erased_at = datetime.fromisoformat(receipt["erased_at"].replace("Z", "+00:00"))
    assert abs((erased_at - before).total_seconds()) < 10, receipt  # never erased before
    assert receipt["blocked"] is True
    left = await keys_tagged(pipeline.services.redis_url, keys.tag)
    withdrew = f"{keys.tombstone.removesuffix(':erased')}:supp" in left
    assert left == left_by_erasure(keys.tombstone, withdrew), left
    assert (await admin.exists(keys.tombstone)) == 1
    assert receipt["keys_removed"] >= len(copied) - 1 - (1 if tombstoned else 0), receipt
    records = await erasure_records(pipeline, customer)
    assert len(records) == 1 and records[0]["subject"] == keys.tag, records
    assert records[0]["keys_removed"] == receipt["keys_removed"]
    # answered as erased from now on
    assert (await call("GET", base, headers=DEV_AUTH)).status == 404
    after = await call("GET", f"{base}/export", headers=DEV_AUTH)
    assert after.status == 200 and after.json["profile"] is None, after


@pytest.mark.parametrize(
    ("name", "held"),
    [("impossible", IMPOSSIBLE_MS), ("infinite", "1e400"), ("no-number", "yesterday"),
     ("fraction", "1.5"), ("not-utf8", b"\xff")],
)  # fmt: skip
async def test_an_erasure_over_a_tombstone_that_holds_no_time_is_recorded(
    deployment: tuple[Pipeline, Worker], admin: aioredis.Redis, name: str, held: bytes | str
) -> None:
    """A tombstone holding no time a date can hold (a tool's, a bug's) beside a
    customer's keys: DELETE erased them, then failed converting it (a 500, and no
    erasure record published; -1e20 ms). It is written over as if none were there: the
    receipt says erased now, the block has its end, and the record is published."""
    pipeline, api = deployment
    customer = f"{pipeline.prefix}tomb-{name}"
    keys = keys_of(pipeline, customer)
    await admin.hset(keys.profile, "n", "1")
    await admin.set(keys.tombstone, held)
    before = datetime.now(UTC)
    erased = await call("DELETE", f"{api.url}/v1/customers/{customer}", headers=DEV_AUTH)
    assert erased.status == 200, erased
    erased_at = datetime.fromisoformat(erased.json["erased_at"].replace("Z", "+00:00"))
    assert abs((erased_at - before).total_seconds()) < 10, erased.json
    assert await admin.exists(keys.profile) == 0
    assert await admin.pttl(keys.tombstone) > 0  # the block's usual end, not none
    stamp = int(await admin.get(keys.tombstone) or b"0")
    assert abs(stamp / 1000 - before.timestamp()) < 10
    assert len(await erasure_records(pipeline, customer)) == 1


def test_no_customer_id_is_logged(deployment: tuple[Pipeline, Worker]) -> None:
    """Run last in the module: the API's and worker's logs name none of the cases."""
    pipeline, _ = deployment
    for worker in pipeline.workers:
        text = worker.log_path.read_text(errors="replace")
        assert "case-" not in text and "tomb-" not in text and TEMPLATE not in text, text[-2000:]
