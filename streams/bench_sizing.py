"""The sizing part of ``moments bench``: how much Redis memory a customer takes.

A store of its own (a fresh prefix) is seeded by the simulator: ``customers`` customers,
``touchpoints`` each over 30 days, then ``decisions`` web recommendations each, decided by
the rules policy on the checkout's catalogue and recorded as the API records them (the
decision's context, its lists, the contacts it made). Redis' ``used_memory`` is read
before and after each step, and ``MEMORY USAGE`` of every key of the prefix gives the
share of each kind of key.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import redis.asyncio as aioredis

from agents.catalogue_holder import CatalogueHolder
from agents.contact_ceilings import offers_shown_within
from agents.contact_policy import ContactPolicy
from agents.control_group import ControlGroup
from agents.decision_records import decision_record
from agents.moments import request_moment
from agents.offer_rules import RuleBasedOfferPolicy
from feature_store import FeatureStore, StoreConfig
from schemas import encode_decision
from schemas.catalogue import load_catalogue
from streams.settings import DEFAULT_CATALOGUE
from streams.simulation.population import CustomerPopulation


def _kind(key: str) -> str:
    """A key's kind: the last part of its name, or ``ctx`` for a decision's context."""
    return "ctx" if ":ctx:" in key else key.rsplit(":", 1)[-1]


async def bench_sizing(
    redis_url: str, customers: int = 2000, touchpoints: int = 50, decisions: int = 10
) -> dict[str, Any]:
    prefix = f"bz{uuid.uuid4().hex[:6]}"
    store = FeatureStore.from_url(redis_url, StoreConfig(secret=prefix.encode(), prefix=prefix))
    plain = aioredis.Redis.from_url(redis_url)
    catalogue = load_catalogue(DEFAULT_CATALOGUE)
    policy = RuleBasedOfferPolicy(CatalogueHolder(catalogue), ContactPolicy(ControlGroup("bz", 0)))
    try:
        used = [int((await plain.info("memory"))["used_memory"])]
        population = CustomerPopulation(customers, seed=3)
        now = datetime.now(UTC)
        count = customers * touchpoints
        events = list(population.touchpoints(count, now - timedelta(days=30), count / 2_592_000))
        for i in range(0, len(events), 500):
            await store.apply(events[i : i + 500])
        used.append(int((await plain.info("memory"))["used_memory"]))
        ids = [c.customer_id for c in population.customers]
        offered = 0
        for _ in range(decisions):
            features = await store.read_many(ids)
            decided = [
                policy.decide(request_moment(c, "web", 3), f, datetime.now(UTC))
                for c, f in zip(ids, features, strict=True)
            ]
            offered += sum(bool(d.offers) for d in decided)
            records = [decision_record(d, encode_decision(d)) for d in decided]
            shown = offers_shown_within(((d, False) for d in decided), catalogue)
            await store.decisions.record(records, shown)
        used.append(int((await plain.info("memory"))["used_memory"]))
        keys: Counter[str] = Counter()
        sizes: Counter[str] = Counter()
        names = [key async for key in plain.scan_iter(match=f"{prefix}:*", count=1000)]
        for key in names:
            kind = _kind(key.decode())
            keys[kind] += 1
            sizes[kind] += int(await plain.memory_usage(key) or 0)
        for i in range(0, len(names), 1000):  # the bench's store goes
            await plain.delete(*names[i : i + 1000])
    finally:
        await store.close()
        await plain.aclose()
    return {
        "customers": customers,
        "touchpoints_each": touchpoints,
        "decisions_each": decisions,
        "decisions_offering": offered,
        "kb_per_customer_after_touchpoints": round((used[1] - used[0]) / customers / 1024, 2),
        "kb_per_customer_after_decisions": round((used[2] - used[0]) / customers / 1024, 2),
        "bytes_per_key_by_kind": {k: round(sizes[k] / keys[k]) for k in sorted(keys)},
        "bytes_per_customer_by_kind": {k: round(sizes[k] / customers) for k in sorted(keys)},
    }
