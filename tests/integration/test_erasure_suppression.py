"""An erased customer who had withdrawn stays withdrawn: the erasure keeps the names of
their withdrawals beside the tombstone (a suppression list), recommendations for the
erased id still suppress those channels while answering as for a stranger, and
``moments rebuild`` keeps them again from the erasure record.

Checked from outside: real HTTP to a ``moments api``, a real worker applying the
touchpoints, Redis read with plain redis-py, the ``customer-erasures`` topic with a plain
consumer, and a rebuild run as its command into an empty Redis.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from feature_store import ApplyStatus, FeatureStore, StoreConfig
from schemas import Consent, Email, Purchase
from streams.services import LocalRedis, Services
from tests.integration import forked_starts
from tests.integration.conftest import SECRET, Pipeline, consume_all
from tests.integration.test_api_erasure import ERASED_FOR_S, tombstone_of
from tests.integration.test_api_support import (
    DEV_AUTH,
    call,
    event,
    eventually,
    keys_tagged,
    left_by_erasure,
)

pytestmark = pytest.mark.integration

CHANNELS = ("web", "email", "sms", "call")
EVERY_WITHDRAWAL = ["consent:email", "consent:sms", "consent:call", "consent:web",
                    "subscribed:email"]  # fmt: skip


def said_stop(customer_id: str) -> list[dict[str, object]]:
    """A customer who bought, then withdrew consent everywhere and unsubscribed."""
    return [
        event("purchase", customer_id, f"{customer_id}-1", minutes_ago=60, amount=300.0),
        event("web_click", customer_id, f"{customer_id}-2", minutes_ago=50, category="books"),
        event("consent", customer_id, f"{customer_id}-3", minutes_ago=30, channel="all",
              granted=False),
        event("email", customer_id, f"{customer_id}-4", minutes_ago=20, action="unsubscribed"),
    ]  # fmt: skip


async def answers(api_url: str, customer_id: str) -> dict[str, dict[str, object]]:
    found = {}
    for channel in CHANNELS:
        url = f"{api_url}/v1/customers/{customer_id}/recommendations?channel={channel}"
        reply = await call("GET", url, headers=DEV_AUTH)
        assert reply.status == 200, reply
        found[channel] = reply.json
    return found


async def test_an_erased_customer_who_withdrew_is_still_not_offered_there(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    bootstrap, redis_url = pipeline.services.kafka_bootstrap, pipeline.services.redis_url
    gone, quiet = f"{pipeline.prefix}said-stop", f"{pipeline.prefix}said-nothing"
    worker = pipeline.start_worker()
    api = pipeline.start_api(MOMENTS_CONTROL_PERCENT="0", MOMENTS_API_BUDGET_MS="5000")
    store = pipeline.store()
    tag, quiet_tag = store.pseudonym(gone), store.pseudonym(quiet)
    await store.close()
    quiet_events = [event("purchase", quiet, f"{quiet}-1", minutes_ago=60, amount=300.0)]
    posted = await call("POST", f"{api.url}/v1/events", headers=DEV_AUTH,
                        body=said_stop(gone) + quiet_events)  # fmt: skip
    assert posted.status == 202, posted

    async def applied(customer_id: str, n: int) -> bool:
        reply = await call("GET", f"{api.url}/v1/customers/{customer_id}", headers=DEV_AUTH)
        return reply.status == 200 and reply.json["features"]["events"] >= n

    await eventually(lambda: applied(gone, 4), "the worker to apply the withdrawals")
    await eventually(lambda: applied(quiet, 1), "the worker to apply the bystander")

    erased = await call("DELETE", f"{api.url}/v1/customers/{gone}", headers=DEV_AUTH)
    assert erased.status == 200, erased
    erased_quiet = await call("DELETE", f"{api.url}/v1/customers/{quiet}", headers=DEV_AUTH)
    assert erased_quiet.status == 200, erased_quiet

    # Right after the erasure: nothing on any channel, for the reasons a known customer's
    # answer gives; not a fallback, and otherwise a stranger's answer (segment "new").
    after = await answers(api.url, gone)
    for channel, answer in after.items():
        assert answer["offers"] == [] and answer["fallback"] is False, answer
        assert answer["reasons"] == ["segment:new", f"suppressed:consent:{channel}"], answer
    # one erased who withdrew nothing is answered as a stranger, offers and all
    assert (await answers(api.url, quiet))["email"]["offers"]
    # the receipt says what was kept
    assert erased.json["withdrawals_kept"] == EVERY_WITHDRAWAL
    assert erased_quiet.json["withdrawals_kept"] == []

    # In Redis: the names of the withdrawals beside the tombstone, as long as it lives;
    # no id, no date.
    tombstone = tombstone_of(pipeline, gone)
    left = await keys_tagged(redis_url, tag)
    assert left == left_by_erasure(tombstone, withdrew=True)
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        kept = left_by_erasure(tombstone, withdrew=True)[2]
        assert await client.smembers(kept) == set(EVERY_WITHDRAWAL)
        assert abs(await client.pttl(kept) - await client.pttl(tombstone)) < 1000
        assert ERASED_FOR_S - 600 <= await client.ttl(kept) <= ERASED_FOR_S
        assert await keys_tagged(redis_url, quiet_tag) == left_by_erasure(
            tombstone_of(pipeline, quiet)
        )
    finally:
        await client.aclose()

    # The erasure record carries the names, and a rebuild into an empty Redis keeps them.
    records = await consume_all(bootstrap, pipeline.topic("customer-erasures"), 2)
    logged = {r.key: json.loads(r.value) for r in records}  # type: ignore[attr-defined]
    assert logged[gone.encode()]["withdrawals"] == EVERY_WITHDRAWAL
    assert logged[quiet.encode()]["withdrawals"] == []
    worker.stop()
    api.stop()
    target = LocalRedis(tmp_path / "rebuilt", appendonly=False)
    target.start()
    rebuilt = FeatureStore.from_url(
        target.url, StoreConfig(secret=SECRET.encode(), prefix=pipeline.prefix.rstrip("-"))
    )
    try:
        command = ["rebuild", "--redis-url", target.url]
        result = forked_starts.run(command, pipeline.env(0), timeout=300)
        assert result.returncode == 0, result.stderr
        assert "2 customers kept erased" in result.stdout
        assert await rebuilt.withdrawals_kept(gone) == EVERY_WITHDRAWAL
        assert await rebuilt.withdrawals_kept(quiet) == []
        assert await keys_tagged(target.url, tag) == left_by_erasure(tombstone, withdrew=True)
    finally:
        await rebuilt.close()
        target.stop()


async def test_a_withdrawal_applied_after_the_erasure_is_kept_too(
    kafka_redis: Services,
) -> None:
    """ "Stop emailing me" then "forget me", sent milliseconds apart: the erasure lands
    before the worker applies the withdrawal. It was lost (the tombstone let nothing in),
    and the erased id was offered email again; now it joins what the erasure kept, for as
    long as the tombstone, and a grant does not take one back."""
    config = StoreConfig(secret=b"late-withdrawal", prefix=f"lw{uuid.uuid4().hex[:8]}")
    store = FeatureStore.from_url(kafka_redis.redis_url, config)
    at = datetime.now(UTC)
    try:
        await store.apply([Purchase(event_id="p", customer_id="c1", ts=at, order_id="o",
                                    amount=10.0, currency="EUR")])  # fmt: skip
        assert (await store.erase("c1")).withdrawals_kept == []
        late = [
            Consent(event_id="w", customer_id="c1", ts=at, channel="email", granted=False),
            Email(event_id="u", customer_id="c1", ts=at, action="unsubscribed"),
            Consent(event_id="g", customer_id="c1", ts=at, channel="email", granted=True),
            # sent minutes before the erasure, applied after it by a worker behind
            Consent(event_id="lag", customer_id="c1", ts=at - timedelta(minutes=5),
                    channel="call", granted=False),
            # a replay of what the erasure already weighed: older than the live lag
            Consent(event_id="old", customer_id="c1", ts=at - timedelta(days=2),
                    channel="sms", granted=False),
        ]  # fmt: skip
        assert set(await store.apply(late)) == {ApplyStatus.ERASED}
        kept = ["consent:email", "consent:call", "subscribed:email"]
        assert await store.withdrawals_kept("c1") == kept
        keys = store._keys.for_customer("c1")
        raw = aioredis.from_url(kafka_redis.redis_url)
        try:
            kept_ms, block_ms = await raw.pttl(keys.suppression), await raw.pttl(keys.tombstone)
        finally:
            await raw.aclose()
        assert kept_ms > 0 and abs(block_ms - kept_ms) < 5_000  # as long as the tombstone
    finally:
        await store.close()
