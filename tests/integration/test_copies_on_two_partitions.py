"""The same touchpoint produced twice, to two partitions (a resend under another key),
reaches two workers at once: one decision goes out for it, with one offer set, and its
contacts and budget units are counted once."""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.integration.conftest import Pipeline, consume_all, kafka_redis, pipeline  # noqa: F401
from tests.integration.test_scale_out import activity, applied, shared_out
from tests.integration.test_service_restarts import all_handled
from tests.integration.test_touchpoints_pipeline import is_moment, produce

pytestmark = pytest.mark.integration
CATALOGUE = Path(__file__).parents[2] / "deploy" / "catalogue" / "offers.toml"
CUSTOMERS = [f"cp-cust-{i:03d}" for i in range(300)]
UNLIMITED = "free-shipping"  # the default offer: no daily budget


def limited_catalogue(path: Path) -> str:
    """The default catalogue with a daily budget (never reached) on every offer but the
    default one (which may have none): each of them shown is counted."""
    head, *offers = CATALOGUE.read_text().split("[[offers]]\n")
    limited = [o if f'offer_id = "{UNLIMITED}"' in o else "daily_limit = 1000000\n" + o
               for o in offers]  # fmt: skip
    path.write_text("[[offers]]\n".join([head, *limited]))
    return str(path)


def recent_events(n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` touchpoints of the last few minutes, most of them decision moments."""
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(seconds=300)
    out = []
    for i in range(n):
        kind = rng.choice(["web_click"] * 6 + ["email", "purchase", "call"])
        ts = (start + timedelta(milliseconds=20 * i)).isoformat().replace("+00:00", "Z")
        e: dict[str, Any] = {"type": kind, "event_id": f"cp-{seed}-{i:05d}",
                             "customer_id": rng.choice(CUSTOMERS), "ts": ts}  # fmt: skip
        if kind == "web_click":
            e |= {"page": "/p", "category": rng.choice(["books", "home", "electronics"])}
        elif kind == "call":
            e |= {"status": "started", "direction": "inbound", "reason": "support"}
        elif kind == "email":
            e |= {"action": rng.choice(["sent", "opened", "clicked"])}
        else:
            e |= {"order_id": f"o{i}", "amount": round(rng.uniform(1, 300), 2),
                  "currency": "EUR"}  # fmt: skip
        out.append(e)
    return out


async def test_a_touchpoint_on_two_partitions_is_decided_once(
    pipeline: Pipeline,  # noqa: F811
    tmp_path: Path,
) -> None:
    env = {"MOMENTS_CATALOGUE_PATH": limited_catalogue(tmp_path / "offers.toml"),
           "MOMENTS_TOPIC_PARTITIONS": "4"}  # fmt: skip
    bootstrap = pipeline.services.kafka_bootstrap
    events = recent_events(4000, seed=8)
    workers = [pipeline.start_worker(**env), pipeline.start_worker(**env)]
    await shared_out(pipeline, workers, 4)  # both workers hold their partitions
    records: list[tuple[bytes | None, bytes]] = []
    for e in events:  # each one twice: keyed by its customer, and by another key
        value = json.dumps(e).encode()
        records += [(e["customer_id"].encode(), value), (f"other-{e['event_id']}".encode(), value)]
    await produce(bootstrap, pipeline.topic("touchpoints"), records)
    await all_handled(pipeline, 300)  # committed: their decisions are on the topic
    assert await applied(pipeline, CUSTOMERS) == activity(events)

    moments = {e["event_id"] for e in events if is_moment(e)}
    sent = await consume_all(bootstrap, pipeline.topic("next-best-offers"), len(moments),
                             wait_s=120)  # fmt: skip
    decisions: dict[str, dict[str, Any]] = {}
    offer_sets: dict[str, set[str]] = defaultdict(set)
    for record in sent:
        body = json.loads(record.value)  # type: ignore[attr-defined]
        decisions.setdefault(body["decision_id"], body)
        offer_sets[body["decision_id"]].add(json.dumps(body["offers"], sort_keys=True))
    assert {d["trigger_event_id"] for d in decisions.values()} == moments
    two_sets = {i: len(s) for i, s in offer_sets.items() if len(s) > 1}

    shown: Counter[tuple[str, str]] = Counter()  # what the distinct decisions showed
    per_offer: Counter[str] = Counter()
    for d in decisions.values():
        if d["offers"]:
            shown[(d["customer_id"], d["channel"])] += 1
            per_offer.update(o["offer_id"] for o in d["offers"] if o["offer_id"] != UNLIMITED)
    r = aioredis.from_url(pipeline.services.redis_url, decode_responses=True)
    try:
        counted: Counter[str] = Counter()
        async for key in r.scan_iter(match=pipeline.prefix.rstrip("-") + ":budget:*"):
            counted.update({k: int(v) for k, v in (await r.hgetall(key)).items()})
    finally:
        await r.aclose()
    store = pipeline.store()
    try:
        contacts: Counter[tuple[str, str]] = Counter()
        for customer in CUSTOMERS:
            for field, value in (await store.raw(customer))["contacts"].items():
                day, _, what = field.partition("|")
                if day.startswith("d") and what.startswith("shown:"):
                    contacts[(customer, what.removeprefix("shown:"))] += int(value)
    finally:
        await store.close()
    miscounted_budgets = {o: (counted[o], per_offer[o]) for o in counted | per_offer
                          if counted[o] != per_offer[o]}  # fmt: skip
    miscounted_contacts = {c: (contacts[c], shown[c]) for c in contacts | shown
                           if contacts[c] != shown[c]}  # fmt: skip
    # per decision id with two offer sets: how many; per offer and per customer's
    # channel: (counted in Redis, shown by the distinct decisions)
    assert (two_sets, miscounted_budgets, miscounted_contacts) == ({}, {}, {})
