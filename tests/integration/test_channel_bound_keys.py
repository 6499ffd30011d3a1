"""A key bound to the channels it may ask recommendations for, through `moments api` on
real Kafka and Redis. A web page's key (``recommend`` alone, readable by the page's
visitors) asked for ``channel=email`` (sms, call): each made-up id was kept 30 days as a
known customer, and each real customer named had an email contact recorded against their
caps and cool-downs, and the offers' daily budgets spent. Bound to ``web``, it is refused
(403) for the others, and nothing is decided, recorded, spent or sent; a key with no
channel list asks for every channel, as before."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from feature_store import FeatureStore
from schemas import WebClick
from streams.api.auth import hash_key
from tests.integration.conftest import Pipeline
from tests.integration.test_api_support import assert_error, call, eventually, read_to_end

pytestmark = pytest.mark.integration

CATALOGUE = """
version = "channels-1"
default_offers = ["picks"]

[[offers]]
offer_id = "mailer"
title = "EUR 10 off, by email"
channels = ["email", "sms", "call"]
value = 10.0
priority = 5.0
daily_limit = 50

[[offers]]
offer_id = "picks"
title = "Weekly picks"
channels = ["web"]
"""

PAGE, CRM, OLD = "page-key-anyone-can-read", "crm-back-end-key", "key-from-before"
KEYS = (
    f"page:recommend=web+outcomes:{hash_key(PAGE)};"
    f"crm:recommend=email,sms:{hash_key(CRM)};"
    f"old:recommend:{hash_key(OLD)}"  # an entry as written before channels: every one
)


async def _recommend(url: str, key: str, customer_id: str, channel: str) -> Any:
    return await call(
        "GET",
        f"{url}/v1/customers/{customer_id}/recommendations?channel={channel}&limit=2",
        headers={"Authorization": f"Bearer {key}"},
    )


async def _held(admin: aioredis.Redis, store: FeatureStore, customer_id: str) -> dict[str, Any]:
    """Everything Redis holds of one customer: each key of theirs (by their hash tag)
    with its value as ``DUMP`` serialises it."""
    tag = store.pseudonym(customer_id)
    return {key: await admin.dump(key) async for key in admin.scan_iter(match=f"*{tag}*")}


async def _budget_keys(admin: aioredis.Redis, pipeline: Pipeline) -> list[bytes]:
    return [k async for k in admin.scan_iter(match=f"{pipeline.prefix.rstrip('-')}:budget*")]


async def test_a_key_bound_to_the_web_is_refused_other_channels_and_nothing_is_recorded(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    path = tmp_path / "offers.toml"
    path.write_text(CATALOGUE)
    api = pipeline.start_api(
        MOMENTS_API_KEYS=KEYS,
        MOMENTS_CATALOGUE_PATH=str(path),
        MOMENTS_POLICY="rules",
        MOMENTS_CONTROL_PERCENT="0",
        MOMENTS_API_BUDGET_MS="5000",
    )
    store = pipeline.store()
    admin = aioredis.Redis.from_url(pipeline.services.redis_url)  # bytes: DUMP's are
    run = uuid.uuid4().hex[:8]
    known, made_up = f"real-{run}", f"made-up-{run}"
    try:
        click = WebClick(event_id=f"e-{known}", customer_id=known, ts=datetime.now(UTC),
                         page="/", category="books")  # fmt: skip
        assert await store.apply([click]) == [1]  # a real customer, as a worker applies
        before = await _held(admin, store, known)
        assert before, "the real customer's profile"

        for customer_id in (known, made_up):
            for channel in ("email", "sms", "call"):
                reply = await _recommend(api.url, PAGE, customer_id, channel)
                body = assert_error(reply, 403, "forbidden")
                assert body == {
                    "error": "forbidden",
                    "message": f"key 'page' may ask recommendations for web only, not for "
                    f"{channel}",
                }, body
        # the web it may ask for (a made-up id there is a stranger, kept a day)
        web = await _recommend(api.url, PAGE, f"visitor-{run}", "web")
        assert web.status == 200 and [o["offer_id"] for o in web.json["offers"]] == ["picks"]
        # a key bound to no channel, and one bound to email, make the offer the page's
        # key was refused: the decision is recorded, its contact counted, its budget spent
        old = await _recommend(api.url, OLD, f"other-{run}", "call")
        assert old.status == 200 and [o["offer_id"] for o in old.json["offers"]] == ["mailer"]
        crm = await _recommend(api.url, CRM, known, "email")
        assert crm.status == 200 and [o["offer_id"] for o in crm.json["offers"]] == ["mailer"]
        assert_error(await _recommend(api.url, CRM, known, "web"), 403, "forbidden")
        day = date.fromisoformat(crm.json["ts"][:10])  # the catalogue's timezone is UTC

        async def sent(*decision_ids: str) -> list[dict[str, Any]] | None:
            topic = pipeline.topic("next-best-offers")
            decisions = [json.loads(r.value) for r in await read_to_end(
                pipeline.services.kafka_bootstrap, topic)]  # fmt: skip
            found = {d["decision_id"] for d in decisions}
            return decisions if set(decision_ids) <= found else None

        ids = (web.json["decision_id"], old.json["decision_id"], crm.json["decision_id"])
        decisions = await eventually(lambda: sent(*ids), "the allowed decisions sent")
        # the refused asked for nothing: the only decisions are the three allowed
        assert sorted(d["decision_id"] for d in decisions) == sorted(ids), decisions
        assert [d["channel"] for d in decisions if d["customer_id"] == known] == ["email"]
        assert not [d for d in decisions if d["customer_id"] == made_up], decisions
        assert await store.budgets.spent(day) == {"mailer": 2}  # the old key's, the crm's
        # no stranger key, no known customer made of a made-up id
        assert await _held(admin, store, made_up) == {}
        after = await _held(admin, store, known)
        assert after != before  # the crm key's email offer is recorded...
        assert set(after) >= set(before)
    finally:
        await admin.aclose()
        await store.close()


async def test_a_refused_channel_leaves_a_real_customer_as_it_was(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """Nothing of the refused requests reaches Redis: the real customer's keys are byte
    for byte as before, and no budget is spent (no other request to mix it with)."""
    path = tmp_path / "offers.toml"
    path.write_text(CATALOGUE)
    api = pipeline.start_api(
        MOMENTS_API_KEYS=KEYS,
        MOMENTS_CATALOGUE_PATH=str(path),
        MOMENTS_POLICY="rules",
        MOMENTS_CONTROL_PERCENT="0",
    )
    store = pipeline.store()
    admin = aioredis.Redis.from_url(pipeline.services.redis_url)
    known = f"real-{uuid.uuid4().hex[:8]}"
    try:
        click = WebClick(event_id=f"e-{known}", customer_id=known, ts=datetime.now(UTC),
                         page="/", category="books")  # fmt: skip
        assert await store.apply([click]) == [1]
        before = await _held(admin, store, known)
        for _ in range(3):
            for channel in ("email", "sms", "call"):
                assert_error(await _recommend(api.url, PAGE, known, channel), 403, "forbidden")
        assert await _held(admin, store, known) == before
        assert await _budget_keys(admin, pipeline) == []
        assert api.metric_sum("moments_decisions_total") == 0.0
    finally:
        await admin.aclose()
        await store.close()
