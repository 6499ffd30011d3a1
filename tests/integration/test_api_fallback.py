"""Recommendations degrade to the catalogue's default offers when Redis is gone.

The API runs on a private ``redis-server`` that the test stops; Kafka stays up.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from feature_store import FeatureStore, StoreConfig
from streams.services import LocalRedis
from tests.integration.conftest import SECRET, Pipeline, Worker, consume_all
from tests.integration.test_api_support import (
    DEV_AUTH,
    Catalogue,
    assert_error,
    call,
    event,
    eventually,
    metric_total,
    read_to_end,
)

pytestmark = pytest.mark.integration

FALLBACKS = "moments_recommendation_fallbacks_total"
METHODS = ("GET", "DELETE")


async def test_recommendations_fall_back_to_default_offers_when_redis_is_down(
    pipeline: Pipeline, private_redis: LocalRedis
) -> None:
    api = pipeline.start_api(
        redis_url=private_redis.url, MOMENTS_CONTROL_PERCENT="0", MOMENTS_API_BUDGET_MS="3000"
    )
    catalogue = Catalogue.load()
    base = f"{api.url}/v1/customers/fb-1/recommendations"
    live = await call("GET", f"{base}?channel=web&limit=3", headers=DEV_AUTH)
    assert live.status == 200 and live.json["fallback"] is False, live
    assert metric_total(api, FALLBACKS) == 0

    private_redis.stop()
    answers = {}
    for channel, limit in (("web", 3), ("web", 1), ("email", 3), ("sms", 2)):
        reply = await call("GET", f"{base}?channel={channel}&limit={limit}", headers=DEV_AUTH)
        assert reply.status == 200, reply
        answer = reply.json
        assert answer["fallback"] is True, answer
        assert answer["customer_id"] == "fb-1" and answer["channel"] == channel
        assert answer["model_version"] == "fallback" and answer["control"] is False
        assert answer["catalogue_version"] == catalogue.version
        assert answer["reasons"][0] in ("fallback:store_unavailable", "fallback:latency_budget")
        offered = [o["offer_id"] for o in answer["offers"]]
        if channel == "web" and limit == 1:  # the default shown just before cools down
            cooling = [f"suppressed:cooldown:{o}" for o in catalogue.defaults_for(channel, 3)]
            assert offered == [] and answer["reasons"][1:] == cooling, answer
        elif channel == "web":  # the customer is on the site: the defaults, the same for all
            assert answer["reasons"][1:] == []
            assert offered and offered == catalogue.defaults_for(channel, limit), answer
            assert [o["propensity"] for o in answer["offers"]] == [1.0] + [0.0] * (len(offered) - 1)
        else:  # reaching out needs consent, which cannot be read now
            assert answer["reasons"][1:] == [f"suppressed:consent_unknown:{channel}"], answer
            assert offered == [], answer
        for offer in answer["offers"]:
            assert offer["title"] == catalogue.offers[offer["offer_id"]]["title"]
        answers[answer["decision_id"]] = answer
    assert metric_total(api, FALLBACKS) == 4
    assert (
        metric_total(api, FALLBACKS, reason="store_unavailable")
        + metric_total(api, FALLBACKS, reason="latency_budget")
        == 4
    )

    # The fallback exposures are logged as decisions once Redis can say their customer
    # is not erased: until then they wait.
    topic = pipeline.topic("next-best-offers")
    await asyncio.sleep(1)
    waiting = await read_to_end(pipeline.services.kafka_bootstrap, topic)
    assert [json.loads(r.value)["fallback"] for r in waiting] == [False]  # type: ignore[attr-defined]
    # Still ready (it answers), degraded: a pod taken out of the load balancer would not
    # answer at all.
    ready = await call("GET", f"{api.url}/readyz")
    assert ready.status == 200, ready
    assert ready.json["status"] == "degraded" and ready.json["checks"]["redis"] == "down"
    assert (await call("GET", f"{api.url}/healthz")).status == 200
    # Ingestion does not need Redis.
    posted = await call(
        "POST", f"{api.url}/v1/events", headers=DEV_AUTH, body=event("web_click", "fb-1", "fb-e1")
    )
    assert posted.status == 202, posted

    # Redis comes back (empty: no scripts loaded): the API reconnects and decides again.
    private_redis.start()
    for _ in range(50):
        reply = await call("GET", f"{base}?channel=web&limit=3", headers=DEV_AUTH)
        if reply.status == 200 and reply.json["fallback"] is False:
            break
        await asyncio.sleep(0.2)
    assert reply.status == 200 and reply.json["fallback"] is False, reply
    assert reply.json["model_version"] != "fallback"
    assert (await call("GET", f"{api.url}/readyz")).status == 200
    records = await consume_all(pipeline.services.kafka_bootstrap, topic, 5 + 1)
    logged = {json.loads(r.value)["decision_id"]: json.loads(r.value) for r in records}  # type: ignore[attr-defined]
    assert set(answers) <= set(logged)
    assert all(logged[d]["fallback"] is True for d in answers)
    # ... and stored, so that their outcomes find them (and teach nothing: no model's
    # features), rather than being set aside as naming no decision
    store = FeatureStore.from_url(
        private_redis.url, StoreConfig(secret=SECRET.encode(), prefix=pipeline.prefix.rstrip("-"))
    )
    try:
        stored = await store.decisions.contexts([("fb-1", d) for d in answers])
    finally:
        await store.close()
    assert all(stored), stored
    assert all(json.loads(c)["fallback"] is True and json.loads(c)["context"] is None
               for c in stored if c)  # fmt: skip

    async def said_redis_is_back() -> list[str] | None:
        lines = api.log_path.read_text().splitlines()
        return lines if any("Redis is reachable again, after" in line for line in lines) else None

    lines = await eventually(said_redis_is_back, "the API to log that Redis is back", 15)
    assert len([line for line in lines if "Redis cannot be reached" in line]) == 1, lines[-20:]


async def test_concurrent_fallbacks_for_one_customer_keep_the_web_cap_and_the_cool_down(
    pipeline: Pipeline, private_redis: LocalRedis, tmp_path: Path
) -> None:
    """A burst of requests for one customer while Redis is down (the soak's, where five
    got the same default offer in 4 ms): the process's fallbacks count what they showed
    them. The first shows tips, which then cools down for a day and gives its place to
    club; the web's daily cap of 2 stops the rest. Another customer is not held back."""
    catalogue = tmp_path / "offers.toml"
    catalogue.write_text(
        'version = "tight"\ndefault_offers = ["tips", "club"]\n'
        "[contact_policy]\ndaily_caps = { web = 2 }\nweekly_caps = { web = 3 }\n"
        'timezone = "America/Chicago"\n'
        '[[offers]]\noffer_id = "tips"\ntitle = "Tips"\nchannels = ["web"]\n'
        "cooldown_s = 86400\n"
        '[[offers]]\noffer_id = "club"\ntitle = "Club"\nchannels = ["web"]\n'
    )
    api = pipeline.start_api(redis_url=private_redis.url, MOMENTS_CONTROL_PERCENT="0",
                             MOMENTS_CATALOGUE_PATH=str(catalogue))  # fmt: skip
    private_redis.stop()
    url = f"{api.url}/v1/customers/fb-burst/recommendations?channel=web&limit=1"
    replies = await asyncio.gather(*(call("GET", url, headers=DEV_AUTH) for _ in range(10)))
    assert all(r.status == 200 and r.json["fallback"] is True for r in replies), replies
    answers = sorted(([o["offer_id"] for o in r.json["offers"]], r.json["reasons"][1:])
                     for r in replies)  # fmt: skip
    assert answers == [
        *[([], ["suppressed:fatigue:web:day"])] * 8,
        (["club"], ["suppressed:cooldown:tips"]),
        (["tips"], []),
    ], answers
    other = await call(
        "GET", f"{api.url}/v1/customers/fb-other/recommendations?limit=1", headers=DEV_AUTH
    )
    assert [o["offer_id"] for o in other.json["offers"]] == ["tips"], other
    assert metric_total(api, FALLBACKS) == 11


async def test_fallback_answers_keep_the_control_group_out(
    pipeline: Pipeline, private_redis: LocalRedis
) -> None:
    """A hold-out customer gets no default offers while Redis is down either: otherwise
    the measured lift over the control group would count moments they were treated."""
    api = pipeline.start_api(redis_url=private_redis.url, MOMENTS_CONTROL_PERCENT="100")
    private_redis.stop()
    reply = await call(
        "GET", f"{api.url}/v1/customers/fb-held/recommendations?channel=web", headers=DEV_AUTH
    )
    assert reply.status == 200, reply
    answer = reply.json
    assert answer["fallback"] is True and answer["control"] is True, answer
    assert answer["offers"] == [], answer
    assert answer["reasons"][1:] == ["control_group"], answer
    assert answer["reasons"][0] in ("fallback:store_unavailable", "fallback:latency_budget")
    private_redis.start()  # published once Redis says the customer is not erased
    records = await consume_all(
        pipeline.services.kafka_bootstrap, pipeline.topic("next-best-offers"), 1
    )
    logged = json.loads(records[0].value)  # type: ignore[attr-defined]
    assert logged["decision_id"] == answer["decision_id"] and logged["control"] is True


async def test_profile_and_erasure_answer_503_not_500_when_redis_is_down(
    pipeline: Pipeline, private_redis: LocalRedis
) -> None:
    api = pipeline.start_api(redis_url=private_redis.url)
    private_redis.stop()
    replies = {m: await call(m, f"{api.url}/v1/customers/fb-2", headers=DEV_AUTH) for m in METHODS}
    assert [r.status for r in replies.values()] == [503, 503], replies
    for reply in replies.values():
        assert_error(reply, 503)


async def test_offers_are_listed_without_budget_counts_when_redis_is_down(
    pipeline: Pipeline, private_redis: LocalRedis, tmp_path: Path
) -> None:
    catalogue = tmp_path / "offers.toml"
    catalogue.write_text(
        'version = "b"\n'
        '[[offers]]\noffer_id = "voucher"\ntitle = "Voucher"\nchannels = ["web"]\n'
        "daily_limit = 10\n"
    )
    api = pipeline.start_api(redis_url=private_redis.url, MOMENTS_CATALOGUE_PATH=str(catalogue))
    up = await call("GET", f"{api.url}/v1/offers", headers=DEV_AUTH)
    assert up.status == 200 and up.json["budgets_read"] is True, up
    assert up.json["offers"][0]["shown_today"] == 0
    private_redis.stop()
    down = await call("GET", f"{api.url}/v1/offers", headers=DEV_AUTH)
    assert down.status == 200 and down.json["budgets_read"] is False, down
    assert down.json["offers"][0]["shown_today"] is None
    assert down.json["offers"][0]["title"] == "Voucher"


async def test_a_customer_erased_lately_is_not_published_when_their_answer_falls_back(
    pipeline: Pipeline, private_redis: LocalRedis
) -> None:
    """With Redis down the tombstone cannot be read; the erasures the API has seen (its
    own, and those on the erasures topic in the last day) keep the fallback answer to an
    erased customer from being published or counted. The other customer's fallback is
    published once Redis is back (empty here) and says they are not erased."""
    api = pipeline.start_api(redis_url=private_redis.url, MOMENTS_CONTROL_PERCENT="0")
    erased = await call("DELETE", f"{api.url}/v1/customers/fb-gone", headers=DEV_AUTH)
    assert erased.status == 200, erased
    private_redis.stop()
    for customer in ("fb-gone", "fb-here"):
        reply = await call(
            "GET", f"{api.url}/v1/customers/{customer}/recommendations", headers=DEV_AUTH
        )
        assert reply.status == 200 and reply.json["fallback"] is True, reply
    assert metric_total(api, FALLBACKS) == 1
    private_redis.start()
    topic = pipeline.topic("next-best-offers")
    records = await consume_all(pipeline.services.kafka_bootstrap, topic, 1)
    assert [json.loads(r.value)["customer_id"] for r in records] == ["fb-here"]  # type: ignore[attr-defined]
    await asyncio.sleep(1)  # published after the other's, had it been
    later = await read_to_end(pipeline.services.kafka_bootstrap, topic)
    assert [json.loads(r.value)["customer_id"] for r in later] == ["fb-here"]


async def test_a_fallback_is_not_published_for_a_customer_erased_before_the_api_knew(
    pipeline: Pipeline, private_redis: LocalRedis
) -> None:
    """Erased with no erasure record this process heard of (long ago, say): while Redis
    is too slow for the latency budget, their fallback answer cannot tell; its decision
    waits for Redis to answer the tombstone check, and is never published. Another
    customer's is, once Redis answers."""
    api = await api_not_told_of_an_erasure(pipeline, private_redis, "fb-old")
    await stall(private_redis, 3000)
    for customer in ("fb-old", "fb-here"):
        reply = await call(
            "GET", f"{api.url}/v1/customers/{customer}/recommendations", headers=DEV_AUTH
        )
        assert reply.status == 200 and reply.json["fallback"] is True, reply
        assert reply.json["reasons"][0] == "fallback:latency_budget", reply
    topic = pipeline.topic("next-best-offers")
    records = await consume_all(pipeline.services.kafka_bootstrap, topic, 1)
    assert [json.loads(r.value)["customer_id"] for r in records] == ["fb-here"]  # type: ignore[attr-defined]
    await asyncio.sleep(1)  # published with the other's, had it been
    later = await read_to_end(pipeline.services.kafka_bootstrap, topic)
    assert [json.loads(r.value)["customer_id"] for r in later] == ["fb-here"]  # type: ignore[attr-defined]


async def test_a_customer_a_fallback_check_finds_erased_is_forgotten_by_the_fallbacks(
    pipeline: Pipeline, private_redis: LocalRedis
) -> None:
    """Erased before this process heard of it, a customer's fallback answer is kept for
    the next fallbacks' caps and cool-downs until Redis answers the check; once it finds
    them erased, nothing of them is kept: their next fallback is a stranger's, the same as
    their first (it was the cool-down of the offers first shown, their id in memory)."""
    api = await api_not_told_of_an_erasure(pipeline, private_redis, "fb-old")
    url = f"{api.url}/v1/customers/%s/recommendations?channel=web&limit=3"
    await stall(private_redis, 2500)
    first = await call("GET", url % "fb-old", headers=DEV_AUTH)
    here = await call("GET", url % "fb-here", headers=DEV_AUTH)
    assert first.json["fallback"] is True and here.json["fallback"] is True, (first, here)
    assert first.json["offers"], first  # the defaults, shown: they would cool down
    topic = pipeline.topic("next-best-offers")
    records = await consume_all(pipeline.services.kafka_bootstrap, topic, 1)  # checked, both
    assert [json.loads(r.value)["customer_id"] for r in records] == ["fb-here"]  # type: ignore[attr-defined]
    await stall(private_redis, 2500)
    second = await call("GET", url % "fb-old", headers=DEV_AUTH)
    stranger = await call("GET", url % "fb-never-seen", headers=DEV_AUTH)
    assert second.json["fallback"] is True and stranger.json["fallback"] is True
    assert second.json["reasons"] == stranger.json["reasons"], (second.json, stranger.json)
    assert second.json["offers"] == first.json["offers"] == stranger.json["offers"]


async def api_not_told_of_an_erasure(
    pipeline: Pipeline, redis: LocalRedis, customer: str
) -> Worker:
    """An API on ``redis``, where ``customer`` is erased with no erasure record it heard
    of (erased long ago, or by a process that recorded none)."""
    api = pipeline.start_api(redis_url=redis.url, MOMENTS_CONTROL_PERCENT="0")
    store = FeatureStore.from_url(
        redis.url, StoreConfig(secret=SECRET.encode(), prefix=pipeline.prefix.rstrip("-"))
    )
    try:
        await store.erase(customer)
    finally:
        await store.close()
    return api


async def stall(redis: LocalRedis, ms: int) -> None:
    """Redis answers no client for ``ms`` (slower than the latency budget)."""
    admin = aioredis.Redis.from_url(redis.url)
    try:
        await admin.execute_command("CLIENT", "PAUSE", str(ms), "ALL")
    finally:
        await admin.aclose()
