"""Customer ids stay out of logs, metrics and Redis.

A worker and an API at the default log level handle everything a customer id can travel
with: touchpoints of every kind (an at-risk caller raising an alert included), events
that are dead-lettered, recommendations, a profile read, outcomes and events posted over
HTTP (some invalid), refused requests and an erasure. Afterwards neither process's log
nor its ``/metrics`` mentions any of those ids, though both logged what they did, and no
value in Redis names one (but the API's outbox, which holds decisions as their Kafka
records do, on purpose), though the profile and the export read them back with the id.
"""

from __future__ import annotations

import json
import uuid

import pytest
import redis.asyncio as aioredis

from tests.integration.conftest import Pipeline, Worker
from tests.integration.test_api_support import DEV_AUTH, call, event, eventually, outcome
from tests.integration.test_touchpoints_pipeline import produce

pytestmark = pytest.mark.integration


def _opaque() -> str:
    """An event id as producers make them: nothing in it names the customer."""
    return uuid.uuid4().hex


def _traffic(ids: list[str]) -> list[dict[str, object]]:
    regular, caller, buyer, *_ = ids
    return [
        event("web_click", regular, _opaque(), minutes_ago=9),
        event("email", regular, _opaque(), minutes_ago=8, action="clicked"),
        event("social_mention", caller, _opaque(), minutes_ago=7, sentiment=-0.9, reach=5000),
        event("call", caller, _opaque(), minutes_ago=6, reason="complaint", sentiment=-0.8),
        event("call", caller, _opaque(), minutes_ago=5, reason="cancel"),
        event("purchase", buyer, _opaque(), minutes_ago=4, amount=120.0),
        event("survey", buyer, _opaque(), minutes_ago=3, score=2, scale="csat5"),
        event("consent", buyer, _opaque(), minutes_ago=2, channel="email", granted=False),
    ]


def _mentions(ids: list[str], text: str) -> list[str]:
    return [i for i in ids if i in text]


# the default, and the most verbose (in JSON lines, which must hold every line)
@pytest.mark.parametrize(("level", "line_format"), [("info", "text"), ("debug", "json")])
async def test_no_customer_id_in_logs_or_metrics(
    pipeline: Pipeline, level: str, line_format: str
) -> None:
    ids = [f"pd{uuid.uuid4().hex[:12]}" for _ in range(5)]
    regular, caller, buyer, erased, stranger = ids
    shown = {"MOMENTS_LOG_LEVEL": level, "MOMENTS_LOG_FORMAT": line_format}
    worker = pipeline.start_worker(**shown)
    api = pipeline.start_api(**shown, MOMENTS_CONTROL_PERCENT="0")
    good = [*_traffic(ids), event("web_click", erased, _opaque(), minutes_ago=1)]
    records = [(str(e["customer_id"]).encode(), json.dumps(e).encode()) for e in good]
    records += [
        (stranger.encode(), b"{not json"),  # dead-lettered: not JSON
        (stranger.encode(), json.dumps({"type": "web_click", "customer_id": stranger}).encode()),
        (stranger.encode(), json.dumps(event("web_click", stranger, _opaque(), minutes_ago=-600))
         .encode()),  # dead-lettered: dated too far ahead
    ]  # fmt: skip
    await produce(pipeline.services.kafka_bootstrap, pipeline.topic("touchpoints"), records)

    async def handled() -> bool:
        ok = sum(_samples(worker, "moments_events_total", 'result="ok"'))
        alerts = sum(_samples(worker, "moments_decisions_total", 'channel="contact_centre"'))
        return ok >= len(good) and alerts >= 1 and worker.metric("moments_dead_letters_total") >= 3

    await eventually(handled, "the worker handled every event and raised alerts")
    outcomes_posted = 0
    for customer in (regular, caller, buyer, stranger):
        reply = await call("GET", f"{api.url}/v1/customers/{customer}/recommendations",
                           headers=DEV_AUTH)  # fmt: skip
        assert reply.status == 200, reply
        profile = await call("GET", f"{api.url}/v1/customers/{customer}", headers=DEV_AUTH)
        assert profile.status == 200, profile  # a recommendation made a profile, if none
        recent = profile.json["recent_decisions"]  # read back with their customer's id
        assert recent and {d["customer_id"] for d in recent} == {customer}, recent
        for offer in reply.json["offers"][:1]:
            answer = outcome(reply.json["decision_id"], customer, offer["offer_id"])
            sent = await call("POST", f"{api.url}/v1/outcomes", headers=DEV_AUTH, body=answer)
            assert sent.status == 202, sent
            outcomes_posted += 1
        bad = outcome("no-such-decision", customer, "nothing", result="maybe")
        sent = await call("POST", f"{api.url}/v1/outcomes", headers=DEV_AUTH, body=[bad])
        assert sent.status == 422, sent
    assert outcomes_posted >= 1  # so that the logs checked below cover handling one
    export = await call("GET", f"{api.url}/v1/customers/{caller}/export", headers=DEV_AUTH)
    assert export.status == 200, export
    kept = export.json["decisions"]  # the worker's alert and the API's decision, with the id
    assert {d["customer_id"] for d in kept} == {caller}, kept
    assert any("intervention_id" in d for d in kept) and any("offers" in d for d in kept), kept
    bad_event = {"type": "web_click", "customer_id": regular}
    posted = await call("POST", f"{api.url}/v1/events", headers=DEV_AUTH,
                        body=[event("web_click", regular, _opaque()), bad_event])  # fmt: skip
    assert posted.status == 422, posted
    refused = await call("GET", f"{api.url}/v1/customers/{regular}",
                         headers={"Authorization": "Bearer wrong"})  # fmt: skip
    assert refused.status == 401, refused
    erasure = await call("DELETE", f"{api.url}/v1/customers/{erased}", headers=DEV_AUTH)
    assert erasure.status == 200, erasure
    after = await call("GET", f"{api.url}/v1/customers/{erased}/recommendations", headers=DEV_AUTH)
    assert after.status == 200 and after.json["fallback"] is False, after  # as a stranger

    naming = await _values_naming(pipeline.services.redis_url, ids)
    assert naming == [], "customer ids in Redis values (key: ids)"

    # what each process logs at info whatever happened: a log that kept nothing would
    # mention no customer either
    for process, expected in ((worker, "learner started at version"),
                              (api, "Moments API stopping")):  # fmt: skip
        _, metrics = process.get("/metrics")
        assert "moments_" in metrics
        assert _mentions(ids, metrics) == [], "customer ids in /metrics"
        process.stop()  # flushes its log
        log = process.log_path.read_text()
        assert expected in log, f"the log is not what the process did:\n{log[-3000:]}"
        assert _mentions(ids, log) == [], f"customer ids in the log:\n{log[-3000:]}"
        if line_format == "json":
            _assert_json_lines(log)


def test_the_worker_port_serves_no_faust_page_that_logs_its_path(pipeline: Pipeline) -> None:
    """Faust's ``/router/<name>/`` on the worker's web port answered an unknown name 500
    and logged it at ERROR with a traceback (``KeyError: '<name>'``): a customer id a
    caller put in the path, in the worker's log. Only Moments' pages are served now."""
    marker = f"pd{uuid.uuid4().hex[:12]}"
    worker = pipeline.start_worker(MOMENTS_LOG_LEVEL="debug")
    for path in (f"/router/{marker}/", f"/table/{marker}/", "/router/", "/", f"/{marker}"):
        status, body = worker.get(path)
        assert status == 404, (path, status, body)
        assert json.loads(body)["error"] == "not_found", body
        assert marker not in body
    assert worker.get("/healthz")[0] == 200 and worker.get("/readyz")[0] == 200
    worker.stop()  # flushes its log
    log = worker.log_path.read_text()
    assert "INFO moments: Moments" in log, log[-3000:]  # it did log (its start-up line)
    assert marker not in log, f"the path in the worker's log:\n{log[-3000:]}"
    assert "aiohttp.server" not in log, log[-3000:]  # no request it failed to handle


async def _values_naming(redis_url: str, ids: list[str]) -> list[tuple[str, list[str]]]:
    """Every key in the whole Redis whose value (a string, or a hash's fields and values,
    or a list's, set's or sorted set's members) names any of ``ids``, with the ids; an API
    process's outbox left out (it holds each decision's JSON until Kafka has it)."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True, encoding_errors="replace")
    found = []
    try:
        async for key in client.scan_iter(count=1000):
            kind = await client.type(key)
            if ":outbox:" in key or kind == "none":  # expired meanwhile
                continue
            if kind == "string":
                values = [await client.get(key) or ""]
            elif kind == "hash":
                values = [f"{f}={v}" for f, v in (await client.hgetall(key)).items()]
            elif kind == "list":
                values = await client.lrange(key, 0, -1)
            elif kind == "set":
                values = list(await client.smembers(key))
            elif kind == "zset":
                values = await client.zrange(key, 0, -1)
            else:
                values = [repr(await client.xrange(key))] if kind == "stream" else []
            named = _mentions(ids, "\n".join(values))
            if named:
                found.append((key, named))
    finally:
        await client.aclose()
    return found


def _assert_json_lines(log: str) -> None:
    """Every line a JSON object a log pipeline can index: nothing printed beside it."""
    levels = set()
    for line in log.splitlines():
        try:
            said = json.loads(line)
        except ValueError:
            pytest.fail(f"a log line that is not JSON: {line[:300]!r}")
        assert {"time", "level", "logger", "message"} <= said.keys(), line[:300]
        levels.add(said["level"])
    assert "DEBUG" in levels, levels


def _samples(process: Worker, name: str, label: str) -> list[float]:
    _, body = process.get("/metrics")
    return [
        float(line.rpartition(" ")[2])
        for line in body.splitlines()
        if line.startswith(name + "{") and label in line
    ]
