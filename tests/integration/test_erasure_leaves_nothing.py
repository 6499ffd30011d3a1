"""After a busy history (touchpoints of every kind, alerts, decisions on two channels,
outcomes learned, a churn-risk example), an erasure leaves nothing of the customer in
Redis: every key of the deployment is scanned, names and values, for their id, keyed hash
and decision ids (pseudonyms ``next-best-offers`` pairs with the id; the offers have daily
budgets, whose counts keep a day's decisions), after the erasure and again after their old
records are replayed to ``touchpoints`` and ``offer-outcomes`` with late and misrouted
ones. What stays is what is meant to: the
tombstone, which keys were removed, the withdrawals kept, and the risk learner's claims
of the examples it learned before the erasure (known limits), which hold the keyed hash.

Checked from outside: real HTTP to a ``moments api``, a real worker, Kafka read and
written with plain clients, Redis scanned with a plain client.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import pytest

from streams.settings import DEFAULT_CATALOGUE
from tests.integration.conftest import Pipeline
from tests.integration.test_api_support import (
    DEV_AUTH,
    call,
    event,
    eventually,
    outcome,
    read_to_end,
)
from tests.integration.test_erased_misrouted import holding, sent
from tests.integration.test_touchpoints_pipeline import produce

pytestmark = pytest.mark.integration


def busy(customer_id: str) -> list[dict[str, object]]:
    """A history that raises alerts (complaints, a bad mention, a call to cancel), takes
    a churn-risk snapshot and withdraws a consent."""
    c = customer_id
    return [
        event("web_click", c, "w1", minutes_ago=60, category="home"),
        event("purchase", c, "p1", minutes_ago=55, amount=120.0),
        event("email", c, "m1", minutes_ago=50, action="opened"),
        *(event("call", c, f"c{n}", minutes_ago=45 - n, reason="complaint") for n in range(3)),
        event("social_mention", c, "s1", minutes_ago=30, sentiment=-0.9, reach=5000),
        event("survey", c, "v1", minutes_ago=25, score=2),
        event("call", c, "c9", minutes_ago=20, reason="cancel"),
        event("consent", c, "k1", minutes_ago=15, channel="sms", granted=False),
        event("web_click", c, "w2", minutes_ago=1, category="books"),
    ]


def with_budgets(path: Path) -> str:
    """The demo catalogue written to ``path`` with a daily budget on every offer but the
    default one."""
    demo = Path(DEFAULT_CATALOGUE).read_text()
    limited = r'(offer_id = "(?!free-shipping")[^"]+"\n)'
    path.write_text(re.sub(limited, r"\1daily_limit = 1000\n", demo))
    return str(path)


async def test_an_erasure_after_a_busy_history_leaves_nothing_but_what_it_means_to(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    bootstrap, redis_url = pipeline.services.kafka_bootstrap, pipeline.services.redis_url
    gone, other = f"{pipeline.prefix}gone", f"{pipeline.prefix}other"
    catalogue = with_budgets(tmp_path / "offers.toml")
    worker = pipeline.start_worker(MOMENTS_CATALOGUE_PATH=catalogue)
    api = pipeline.start_api(MOMENTS_CONTROL_PERCENT="0", MOMENTS_API_BUDGET_MS="5000",
                             MOMENTS_CATALOGUE_PATH=catalogue)  # fmt: skip
    store = pipeline.store()
    tag = store.pseudonym(gone)
    await store.close()
    prefix = pipeline.prefix.rstrip("-")
    history = busy(gone)
    posted = await call("POST", f"{api.url}/v1/events", headers=DEV_AUTH, body=history)
    assert posted.status == 202, posted

    async def applied() -> bool:
        view = await call("GET", f"{api.url}/v1/customers/{gone}", headers=DEV_AUTH)
        return view.status == 200 and view.json["features"]["events"] == len(history)

    await eventually(applied, "the history applied", 60)
    shown = []
    for channel in ("web", "email") * 4:
        url = f"{api.url}/v1/customers/{gone}/recommendations?channel={channel}"
        answer = await call("GET", url, headers=DEV_AUTH)
        assert answer.status == 200, answer
        shown += [answer.json] if answer.json["offers"] else []
    results = [outcome(d["decision_id"], gone, d["offers"][0]["offer_id"], result)
               for d in shown for result in ("clicked", "accepted")]  # fmt: skip
    assert results, "no offer was shown"
    posted = await call("POST", f"{api.url}/v1/outcomes", headers=DEV_AUTH, body=results)
    assert posted.status == 202, posted

    async def learned_and_alerted() -> bool:
        alerts = await read_to_end(bootstrap, pipeline.topic("interventions"))
        learned = worker.metric("moments_learning_outcomes_total", result="learned")
        return learned >= 1 and any(a.key == gone.encode() for a in alerts)

    await eventually(learned_and_alerted, "outcomes learned and an alert raised", 60)
    await asyncio.sleep(3)  # the decisions answered reach Kafka (the API's linger)
    erasure = await call("DELETE", f"{api.url}/v1/customers/{gone}", headers=DEV_AUTH)
    assert erasure.status == 200, erasure
    erased_at_ms = time.time() * 1000
    base = f"{prefix}:{{{tag}}}"
    meant = [f"{base}:erased", f"{base}:erasure", f"{base}:supp"]
    claims = (f"{prefix}:claims:{{risk:", f"{prefix}:claimt:{{risk:")

    decided = await read_to_end(bootstrap, pipeline.topic("next-best-offers"))
    decision_ids = {json.loads(d.value)["decision_id"].encode()  # the API's and the worker's
                    for d in decided if d.key == gone.encode() and d.value}  # fmt: skip
    assert len(decision_ids) > len(shown), "no decision without offers, or of the worker's"

    async def left() -> list[str]:
        found = await holding(redis_url, prefix, [gone.encode(), tag.encode(), *decision_ids])
        return [k for k in found if k not in meant and not k.startswith(claims)]

    assert await left() == []
    # their old records again, and late and misrouted ones
    for name in ("touchpoints", "offer-outcomes"):
        old = [(r.key, r.value) for r in await read_to_end(bootstrap, pipeline.topic(name))
               if r.key == gone.encode() or gone.encode() in (r.value or b"")]  # fmt: skip
        await produce(bootstrap, pipeline.topic(name), old)
    await produce(bootstrap, pipeline.topic("touchpoints"), [
        sent(gone, event("web_click", gone, "late-1", minutes_ago=0)),
        sent(other, event("call", gone, "late-2", minutes_ago=0, reason="cancel")),
        sent(gone, event("web_click", other, "late-3", minutes_ago=0)),
    ])  # fmt: skip

    async def refused() -> bool:
        events = worker.metric_sum("moments_events_total", result="erased")
        outcomes = worker.metric("moments_learning_outcomes_total", result="erased")
        return events >= len(history) + 2 and outcomes >= len(results)

    await eventually(refused, "the replayed and late records refused", 60)
    assert await left() == []
    for name in ("next-best-offers", "interventions", "touchpoints-dlq", "offer-outcomes-dlq",
                 "risk-examples"):  # fmt: skip
        records = await read_to_end(bootstrap, pipeline.topic(name))
        naming = [r for r in records if r.timestamp >= erased_at_ms and
                  (r.key == gone.encode() or gone.encode() in (r.value or b"") or
                   tag.encode() in (r.value or b""))]  # fmt: skip
        assert naming == [], (name, naming)
