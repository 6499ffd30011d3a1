"""Every endpoint of the HTTP API on real Kafka and Redis (DESIGN.md section 4, HTTP).

A ``moments api`` subprocess per test (its own topic and key prefix); what it writes is
checked with plain aiokafka consumers, and profiles after a real worker processed the
events. No key is configured, so the development key is accepted.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import jsonschema
import pytest

from tests.integration.conftest import Pipeline, consume_all
from tests.integration.test_api_support import (
    DEV_AUTH,
    Catalogue,
    assert_error,
    call,
    event,
    eventually,
    metric_total,
    outcome,
    read_to_end,
)

pytestmark = pytest.mark.integration

# Nobody in the hold-out group, and a latency budget a busy test machine cannot miss:
# the fallback path has its own test (test_api_fallback.py).
DECIDING = {"MOMENTS_CONTROL_PERCENT": "0", "MOMENTS_API_BUDGET_MS": "5000"}


def parse_ts(value: str) -> datetime:
    ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert ts.tzinfo is not None, value
    return ts


@pytest.mark.parametrize("event_loop", ["uvloop", "asyncio"])
async def test_recommendations_rank_offers_log_the_decision_and_keep_its_context(
    pipeline: Pipeline, event_loop: str
) -> None:
    api = pipeline.start_api(**DECIDING, MOMENTS_EVENT_LOOP=event_loop, MOMENTS_LOG_LEVEL="info")
    assert f"(event loop: {event_loop})" in api.log_path.read_text()
    catalogue = Catalogue.load()
    base = f"{api.url}/v1/customers/rec-1/recommendations"

    web = await call("GET", f"{base}?channel=web&limit=2", headers=DEV_AUTH)
    assert web.status == 200, web
    assert web.headers["Content-Type"].startswith("application/json")
    answer = web.json
    uuid.UUID(answer["decision_id"])
    assert answer["customer_id"] == "rec-1"
    assert answer["channel"] == "web"
    assert answer["fallback"] is False and answer["control"] is False
    assert answer["model_version"] and isinstance(answer["reasons"], list)
    parse_ts(answer["ts"])
    offers = answer["offers"]
    assert 1 <= len(offers) <= 2, answer
    # Best first, except that with probability epsilon an explored offer leads (the
    # decision then says so, and logs the explored offer's lower propensity).
    scores = [o["score"] for o in offers]
    explored = "exploration" in answer["reasons"]
    best_first = scores[1:] if explored else scores
    assert best_first == sorted(best_first, reverse=True), answer
    if explored:
        assert offers[0]["propensity"] < 0.5, answer
    assert len({o["offer_id"] for o in offers}) == len(offers)
    for offer in offers:
        known = catalogue.offers[offer["offer_id"]]
        assert "web" in known["channels"]
        assert offer["title"] == known["title"]
        assert isinstance(offer["propensity"], float) and 0 <= offer["propensity"] <= 1

    email = await call("GET", f"{base}?channel=email&limit=1", headers=DEV_AUTH)
    assert email.status == 200, email
    assert email.json["channel"] == "email" and len(email.json["offers"]) <= 1
    for offer in email.json["offers"]:
        assert "email" in catalogue.offers[offer["offer_id"]]["channels"]
    default = await call("GET", base, headers=DEV_AUTH)  # channel=web, limit=3
    assert default.status == 200 and default.json["channel"] == "web", default
    assert 1 <= len(default.json["offers"]) <= 3
    answers = [answer, email.json, default.json]
    assert len({a["decision_id"] for a in answers}) == 3

    # Each exposure is logged as a decision on next-best-offers, keyed by the customer.
    records = await consume_all(
        pipeline.services.kafka_bootstrap, pipeline.topic("next-best-offers"), 3
    )
    assert len(records) == 3
    logged = {json.loads(r.value)["decision_id"]: r for r in records}  # type: ignore[attr-defined]
    assert set(logged) == {a["decision_id"] for a in answers}
    for a in answers:
        record = logged[a["decision_id"]]
        assert record.key == b"rec-1"  # type: ignore[attr-defined]
        sent = json.loads(record.value)  # type: ignore[attr-defined]
        for name in ("customer_id", "channel", "control", "model_version", "reasons"):
            assert sent[name] == a[name], name
        assert [o["offer_id"] for o in sent["offers"]] == [o["offer_id"] for o in a["offers"]]
        assert "trigger_event_id" in sent and parse_ts(sent["ts"])

    # The decision context is kept: the profile lists the decisions, newest first.
    profile = await call("GET", f"{api.url}/v1/customers/rec-1", headers=DEV_AUTH)
    assert profile.status == 200, profile
    recent = profile.json["recent_decisions"]
    assert [d["decision_id"] for d in recent] == [a["decision_id"] for a in reversed(answers)]
    assert [o["offer_id"] for o in recent[-1]["offers"]] == [o["offer_id"] for o in offers]
    store = pipeline.store()
    try:
        contexts = await store.decisions.contexts([("rec-1", a["decision_id"]) for a in answers])
        for a, context in zip(answers, contexts, strict=True):
            assert context is not None and json.loads(context)["decision_id"] == a["decision_id"]
    finally:
        await store.close()
    assert metric_total(api, "moments_decisions_total", channel="web") == 2
    assert metric_total(api, "moments_decisions_total", channel="email") == 1
    for a in answers:  # each offer made, counted by offer and channel
        for o in a["offers"]:
            made = sum(o["offer_id"] in {x["offer_id"] for x in b["offers"]}
                       for b in answers if b["channel"] == a["channel"])  # fmt: skip
            assert metric_total(api, "moments_offers_made_total", offer=o["offer_id"],
                                channel=a["channel"]) == made, o  # fmt: skip
    assert metric_total(api, "moments_offers_made_total") == sum(len(a["offers"]) for a in answers)


async def test_events_one_or_a_list_are_accepted_and_produced_to_kafka(
    pipeline: Pipeline,
) -> None:
    api = pipeline.start_api()
    one = event("web_click", "ev-1", "ev-e1", page="/home")
    many = [
        event("purchase", "ev-2", "ev-e2", amount=19.99),
        event("call", "ev-1", "ev-e3", reason="billing", queue="billing"),
        event("email", "ev-3", "ev-e4", action="clicked", campaign_id="c-7", unknown="ignored"),
    ]
    single = await call("POST", f"{api.url}/v1/events", headers=DEV_AUTH, body=one)
    assert single.status == 202, single
    assert single.json == {"accepted": 1, "event_ids": ["ev-e1"]}
    listed = await call("POST", f"{api.url}/v1/events", headers=DEV_AUTH, body=many)
    assert listed.status == 202, listed
    assert listed.json == {"accepted": 3, "event_ids": ["ev-e2", "ev-e3", "ev-e4"]}

    sent = {e["event_id"]: e for e in [one, *many]}
    records = await consume_all(pipeline.services.kafka_bootstrap, pipeline.topic("touchpoints"), 4)
    assert len(records) == 4
    for record in records:
        got = json.loads(record.value)  # type: ignore[attr-defined]
        want = sent.pop(got["event_id"])
        assert record.key == want["customer_id"].encode()  # type: ignore[attr-defined]
        assert got == want  # as sent: a field the contract does not know is kept for others
    assert not sent


async def test_invalid_events_get_422_naming_each_item_and_field_and_nothing_is_produced(
    pipeline: Pipeline,
) -> None:
    api = pipeline.start_api()
    items = [
        event("web_click", "bad-1", "bad-e0"),
        {k: v for k, v in event("web_click", "bad-1", "bad-e1").items() if k != "page"},
        event("survey", "bad-1", "bad-e2"),
        event("purchase", "bad-1", "bad-e3", amount=-5),
        event("web_click", "bad-1", "bad-e4") | {"type": "teleport"},
        event("social_mention", "bad-1", "bad-e5", sentiment=3),
        # a day ahead: the workers would dead-letter it after a 202 (15 minutes are let by)
        event("web_click", "bad-1", "bad-e6")
        | {"ts": (datetime.now(UTC) + timedelta(days=1)).isoformat()},
        event("web_click", "bad-1", "bad-e7")
        | {"ts": (datetime.now(UTC) + timedelta(minutes=5)).isoformat()},
    ]
    reply = await call("POST", f"{api.url}/v1/events", headers=DEV_AUTH, body=items)
    body = assert_error(reply, 422, "invalid_events")
    details = body["details"]
    assert [d["index"] for d in details] == [1, 3, 4, 5, 6], details
    for detail, field in zip(details, ["page", "amount", "type", "sentiment", "$.ts"],
                             strict=True):  # fmt: skip
        assert field in detail["reason"], detail
    assert "in the future" in details[-1]["reason"]
    single = await call(
        "POST",
        f"{api.url}/v1/events",
        headers=DEV_AUTH,
        body=event("call", "bad-1", "x", status="?"),
    )
    detail = assert_error(single, 422, "invalid_events")["details"]
    assert [d["index"] for d in detail] == [0] and "status" in detail[0]["reason"], detail

    # Nothing of the rejected requests reached Kafka: only a later good event is there.
    sentinel = event("web_click", "good-1", "good-e1")
    ok = await call("POST", f"{api.url}/v1/events", headers=DEV_AUTH, body=sentinel)
    assert ok.status == 202, ok
    records = await read_to_end(pipeline.services.kafka_bootstrap, pipeline.topic("touchpoints"))
    assert [json.loads(r.value)["event_id"] for r in records] == ["good-e1"]


async def test_outcomes_one_or_a_list_are_accepted_and_produced_invalid_ones_rejected(
    pipeline: Pipeline,
) -> None:
    api = pipeline.start_api()
    url = f"{api.url}/v1/outcomes"
    one = outcome("d-1", "out-1", "free-shipping", "clicked")
    many = [
        outcome("d-2", "out-2", "home-refresh", "shown"),
        outcome("d-3", "out-1", "x", "clicked"),
    ]
    single = await call("POST", url, headers=DEV_AUTH, body=one)
    assert single.status == 202, single
    assert single.json == {"accepted": 1, "decision_ids": ["d-1"]}
    listed = await call("POST", url, headers=DEV_AUTH, body=many)
    assert listed.status == 202, listed
    assert listed.json == {"accepted": 2, "decision_ids": ["d-2", "d-3"]}

    bad = [
        outcome("d-4", "out-1", "free-shipping"),
        outcome("d-5", "out-1", "free-shipping", "loved"),
        {k: v for k, v in outcome("d-6", "out-1", "o").items() if k != "offer_id"},
        outcome("d-7", "out-1", "free-shipping") | {"ts": "yesterday"},
        # far ahead, as a touchpoint is refused (the learner would have learned it)
        outcome("d-8", "out-1", "free-shipping") | {"ts": "9998-12-31T23:59:59-23:59"},
    ]
    rejected = await call("POST", url, headers=DEV_AUTH, body=bad)
    details = assert_error(rejected, 422, "invalid_outcomes")["details"]
    assert [d["index"] for d in details] == [1, 2, 3, 4], details
    for detail, field in zip(details, ["outcome", "offer_id", "ts", "$.ts"], strict=True):
        assert field in detail["reason"], detail
    assert "in the future" in details[-1]["reason"]

    sent = {o["decision_id"]: o for o in [one, *many]}
    records = await consume_all(
        pipeline.services.kafka_bootstrap, pipeline.topic("offer-outcomes"), 3
    )
    assert len(records) == 3, "the rejected list must not have been produced"
    for record in records:
        got = json.loads(record.value)  # type: ignore[attr-defined]
        want = sent.pop(got["decision_id"])
        assert record.key == want["customer_id"].encode()  # type: ignore[attr-defined]
        assert {k: got[k] for k in ("customer_id", "offer_id", "outcome")} == {
            k: want[k] for k in ("customer_id", "offer_id", "outcome")
        }
        assert parse_ts(got["ts"]) == parse_ts(want["ts"])
    assert not sent
    accepted = "moments_outcomes_accepted_total"
    assert metric_total(api, accepted, outcome="clicked") == 2
    assert metric_total(api, accepted, outcome="shown") == 1
    assert metric_total(api, accepted, outcome="loved") == 0
    # the learner's count, the contract's: a dashboard summing it over every job counts
    # each outcome once
    assert metric_total(api, "moments_outcomes_total", outcome="clicked") == 0


async def test_profile_shows_what_the_worker_made_of_the_events(pipeline: Pipeline) -> None:
    pipeline.start_worker()
    api = pipeline.start_api(**DECIDING)
    events = [
        event("web_click", "prof-1", "prof-e1", minutes_ago=30, category="books"),
        event("purchase", "prof-1", "prof-e2", minutes_ago=20, amount=120.5),
        event("consent", "prof-1", "prof-e3", minutes_ago=10, channel="email", granted=False),
        event("survey", "prof-1", "prof-e4", minutes_ago=5, score=9),
    ]
    posted = await call("POST", f"{api.url}/v1/events", headers=DEV_AUTH, body=events)
    assert posted.status == 202, posted
    url = f"{api.url}/v1/customers/prof-1"

    async def processed() -> object:
        reply = await call("GET", url, headers=DEV_AUTH)
        if reply.status != 200:
            return None
        body = reply.json
        done = body["features"]["events"] == 4 and body["recent_decisions"]
        return body if done else None

    profile = await eventually(processed, "the worker to process the four events")
    features = profile["features"]
    assert profile["customer_id"] == "prof-1"
    assert features["by_type"] == {"web_click": 1, "purchase": 1, "consent": 1, "survey": 1}
    assert features["purchases"] == 1 and features["spend"] == pytest.approx(120.5)
    assert profile["consent"] == {"email": False} == features["consent"]
    assert profile["segment"] == features["segment"] and isinstance(profile["segment"], str)
    assert profile["value"] == features["value"] and profile["value"] >= 0
    assert "risk" in profile and profile["control_group"] is False  # none held out here
    assert [t["event_id"] for t in profile["recent_touchpoints"]] == [
        "prof-e4", "prof-e3", "prof-e2", "prof-e1"
    ]  # fmt: skip
    # The worker decided on the web click (a decision moment) and kept its context.
    (decided,) = profile["recent_decisions"]
    assert decided["trigger_event_id"] == "prof-e1" and decided["channel"] == "web"

    missing = await call("GET", f"{api.url}/v1/customers/nobody-here", headers=DEV_AUTH)
    assert_error(missing, 404, "not_found")

    # the profile and the erasure receipt are as /openapi.json describes them
    spec = (await call("GET", f"{api.url}/openapi.json")).json
    paths = spec["paths"]["/v1/customers/{customer_id}"]
    described = {m: paths[m]["responses"]["200"]["content"]["application/json"]["schema"]
                 for m in ("get", "delete")}  # fmt: skip
    jsonschema.validate(profile, described["get"])
    erased = await call("DELETE", url, headers=DEV_AUTH)
    assert erased.status == 200, erased
    jsonschema.validate(erased.json, described["delete"])


async def test_service_endpoints_openapi_health_readiness_metrics(pipeline: Pipeline) -> None:
    api = pipeline.start_api()
    spec = await call("GET", f"{api.url}/openapi.json")  # no key needed
    assert spec.status == 200 and spec.headers["Content-Type"].startswith("application/json")
    document = spec.json
    assert document["openapi"].startswith("3.")
    assert {
        "/v1/customers/{customer_id}/recommendations": {"get"},
        "/v1/customers/{customer_id}": {"get", "delete"},
        "/v1/events": {"post"},
        "/v1/outcomes": {"post"},
        "/v1/alerts/stream": {"get"},
        "/healthz": {"get", "head"},
        "/readyz": {"get", "head"},
        "/metrics": {"get"},
    }.items() <= {path: set(ops) for path, ops in document["paths"].items()}.items()

    health = await call("GET", f"{api.url}/healthz")
    assert health.status == 200 and health.json == {"status": "ok"}, health
    ready = await call("GET", f"{api.url}/readyz")
    assert ready.status == 200, ready
    checks = {"kafka": "ok", "redis": "ok", "alerts": "ok", "models": "ok"}
    assert ready.json == {"status": "ready", "checks": checks}
    console = await call("GET", f"{api.url}/console")
    assert console.status == 200 and console.headers["Content-Type"].startswith("text/html")

    for _ in range(3):
        rec = await call("GET", f"{api.url}/v1/customers/m-1/recommendations", headers=DEV_AUTH)
        assert rec.status == 200, rec
    assert_error(await call("GET", f"{api.url}/v1/customers/m-1/recommendations"), 401)
    metrics = await call("GET", f"{api.url}/metrics")
    assert metrics.status == 200 and metrics.headers["Content-Type"].startswith("text/plain")
    text = metrics.body.decode()
    assert "# TYPE moments_http_request_seconds histogram" in text
    route = "/v1/customers/{customer_id}/recommendations"
    assert metric_total(api, "moments_http_request_seconds_count", route=route, status="200") == 3
    assert metric_total(api, "moments_http_request_seconds_count", route=route, status="401") == 1
    # refusals sent before the body (asked with an Expect header) count under their route
    events = f"{api.url}/v1/events"
    unexpected = await call("POST", events, body=[], headers={**DEV_AUTH, "Expect": "jane-doe"})
    assert_error(unexpected, 417)
    assert_error(await call("POST", events, body=[], headers={"Expect": "100-continue"}), 401)
    for status in ("417", "401"):
        assert metric_total(api, "moments_http_request_seconds_count", route="/v1/events",
                            status=status, method="POST") == 1, status  # fmt: skip
    assert metric_total(api, "moments_decisions_total", kind="next_best_offer") == 3
    assert "m-1" not in text, "no customer ids in metric labels"
    profile = "/v1/customers/{customer_id}"
    assert (await call("GET", f"{api.url}/v1/customers/m-1", headers=DEV_AUTH)).status == 200
    assert (await call("DELETE", f"{api.url}/v1/customers/m-1", headers=DEV_AUTH)).status == 200
    for method in ("GET", "DELETE"):  # a profile read and an erasure timed apart
        assert (
            metric_total(api, "moments_http_request_seconds_count", route=profile, method=method)
            == 1
        ), method


async def test_offers_list_the_catalogue_in_use_by_channel(pipeline: Pipeline) -> None:
    api = pipeline.start_api()
    catalogue = Catalogue.load()
    everything = await call("GET", f"{api.url}/v1/offers", headers=DEV_AUTH)
    assert everything.status == 200, everything
    body = everything.json
    assert body["catalogue_version"] == catalogue.version
    assert body["default_offers"] == catalogue.default_offers
    assert body["budgets_read"] is True  # nothing to read: no offer has a budget
    assert [o["offer_id"] for o in body["offers"]] == list(catalogue.offers)
    for offer in body["offers"]:
        assert offer["title"] == catalogue.offers[offer["offer_id"]]["title"]
        assert offer["available_now"] is True and "shown_today" not in offer
    caps = catalogue.contact_policy
    assert body["contact_caps"] == {
        c: {
            "day": caps["daily_caps"][c],
            "week": caps["weekly_caps"][c],
            "quiet_hours": None,
            "consent_required": False,
        }
        for c in ("web", "email", "sms", "call")
    }  # the shipped catalogue has no quiet hours, and consent holds until withdrawn
    assert body["contact_timezone"] == "UTC"
    sms = await call("GET", f"{api.url}/v1/offers?channel=sms", headers=DEV_AUTH)
    assert [o["offer_id"] for o in sms.json["offers"]] == [
        o for o, offer in catalogue.offers.items() if "sms" in offer["channels"]
    ]
    assert sms.json["contact_caps"] == {"sms": body["contact_caps"]["sms"]}
    assert_error(await call("GET", f"{api.url}/v1/offers?channel=fax", headers=DEV_AUTH),
                 400, "invalid_channel")  # fmt: skip
    assert_error(await call("GET", f"{api.url}/v1/offers"), 401)
