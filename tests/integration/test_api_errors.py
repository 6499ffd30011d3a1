"""Bad input gets a 4xx with a JSON body that says what is wrong; it is never a 500.

Every error body is a JSON object with ``error`` and ``message``. Limits are set low
(``MOMENTS_API_MAX_BODY_BYTES``, ``MOMENTS_API_MAX_ITEMS``) so they are cheap to hit.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

import pytest

from streams.api.unreadable_requests import LOG_EVERY_S
from tests.integration.conftest import Pipeline
from tests.integration.test_api_support import (
    DEV_AUTH,
    assert_error,
    call,
    event,
    metric_total,
    outcome,
)

pytestmark = pytest.mark.integration

MAX_BODY = 4096
MAX_ITEMS = 5
LONG_ID = "c" * 257


@dataclass
class Bad:
    method: str
    path: str
    status: int
    code: str
    data: bytes | None = None
    content_type: str | None = "application/json"
    auth: bool = True


def json_bytes(value: object) -> bytes:
    return json.dumps(value).encode()


def bad_requests() -> list[Bad]:
    click = event("web_click", "err-1", "err-e1")
    padded = event("web_click", "err-1", "err-e2", page="/" + "x" * MAX_BODY)
    cases: list[Bad] = []
    for path in ("/v1/events", "/v1/outcomes"):
        cases += [
            Bad("POST", path, 400, "malformed_json", b'{"type": "web_click", '),
            Bad("POST", path, 400, "malformed_json", b"\xff\xfe not utf-8"),
            Bad("POST", path, 400, "malformed_json", b""),
            Bad("POST", path, 415, "unsupported_media_type", json_bytes(click), "text/plain"),
            Bad("POST", path, 415, "unsupported_media_type", json_bytes(click), None),
            Bad(
                "POST",
                path,
                415,
                "unsupported_media_type",
                b"type=web_click",
                "application/x-www-form-urlencoded",
            ),
            Bad("POST", path, 413, "body_too_large", json_bytes(padded)),
            Bad("POST", path, 413, "too_many_items", json_bytes([click] * (MAX_ITEMS + 1))),
            Bad("POST", path, 400, "empty", b"[]"),
        ]
        for scalar in (b"null", b"42", b'"text"', b"[1, 2]", b"{}"):
            cases.append(Bad("POST", path, 422, "invalid_" + path.rsplit("/", 1)[1], scalar))
    recommendations = "/v1/customers/err-1/recommendations"
    for query in ("channel=fax", "channel=", "channel=WEB"):
        cases.append(Bad("GET", f"{recommendations}?{query}", 400, "invalid_channel"))
    for limit in ("0", "11", "-1", "abc", "2.5", "", "1e3", "9" * 5000):
        cases.append(Bad("GET", f"{recommendations}?limit={limit}", 400, "invalid_limit"))
    for method, path in (
        ("GET", f"/v1/customers/{LONG_ID}/recommendations"),
        ("GET", f"/v1/customers/{LONG_ID}"),
        ("DELETE", f"/v1/customers/{LONG_ID}"),
    ):
        cases.append(Bad(method, path, 400, "invalid_customer_id"))
    # an id of only whitespace or with a control character: none is decided for or taken
    # in (reading and erasing take them: profiles made before the rule)
    for unfit in ("%20", "%20%09", "a%00b", "%E2%80%AEevil", "c%1B%5B31m"):
        cases.append(Bad("GET", f"/v1/customers/{unfit}/recommendations", 400,
                         "invalid_customer_id"))  # fmt: skip
        cases.append(Bad("GET", f"/v1/customers/{unfit}", 404, "not_found"))
    for unfit in (" ", "a\x00b", "\u202eevil", "line\r\nbreak"):
        bad_click = event("web_click", unfit, "err-e3")
        cases.append(
            Bad("POST", "/v1/events", 422, "invalid_events", json_bytes([click, bad_click]))
        )
        outcome = {"decision_id": "d1", "customer_id": unfit, "offer_id": "o1",
                   "outcome": "clicked", "ts": "2026-12-01T00:00:00Z"}  # fmt: skip
        cases.append(Bad("POST", "/v1/outcomes", 422, "invalid_outcomes", json_bytes(outcome)))
    for path in ("/v2/customers/x", "/v1/customers/", "/v1/customers/x/offers", "/nothing"):
        cases.append(Bad("GET", path, 404, "not_found", auth=False))
        cases.append(Bad("GET", path, 404, "not_found"))
    for method, path in (
        ("PUT", "/v1/events"),
        ("GET", "/v1/events"),
        ("GET", "/v1/outcomes"),
        ("PATCH", "/v1/customers/x"),
        ("POST", "/v1/customers/x/recommendations"),
        ("POST", "/healthz"),
        ("DELETE", "/metrics"),
    ):
        cases.append(Bad(method, path, 405, "method_not_allowed", auth=False))
    return cases


async def test_bad_input_gets_a_json_4xx_never_a_500(pipeline: Pipeline) -> None:
    api = pipeline.start_api(
        MOMENTS_API_MAX_BODY_BYTES=str(MAX_BODY), MOMENTS_API_MAX_ITEMS=str(MAX_ITEMS)
    )
    failures = []
    for bad in bad_requests():
        reply = await call(
            bad.method,
            api.url + bad.path,
            headers=DEV_AUTH if bad.auth else {},
            data=bad.data,
            content_type=bad.content_type,
        )
        try:
            assert_error(reply, bad.status, bad.code)
        except AssertionError as exc:
            failures.append(f"{bad.method} {bad.path[:80]} {bad.data!r:.80}: {exc}")
    assert not failures, "\n".join(failures)

    # Invalid items are named one by one, with the field at fault.
    items = [
        event("web_click", "err-1", "ok-1"),
        event("email", "err-1", "bad-1", action="teleported"),
        event("purchase", "err-1", "bad-2", currency="euro"),
    ]
    reply = await call("POST", f"{api.url}/v1/events", headers=DEV_AUTH, body=items)
    details = assert_error(reply, 422, "invalid_events")["details"]
    assert [(d["index"], "action" in d["reason"]) for d in details[:1]] == [(1, True)], details
    assert details[1]["index"] == 2 and "currency" in details[1]["reason"], details
    reply = await call(
        "POST", f"{api.url}/v1/outcomes", headers=DEV_AUTH, body=[outcome("d", "c", "o", "meh")]
    )
    assert_error(reply, 422, "invalid_outcomes")

    # The API is still healthy, and its own metrics never saw a 5xx (but /readyz's 503s
    # while it was connecting to Kafka at start-up).
    assert (await call("GET", f"{api.url}/healthz")).status == 200
    _, metrics = api.get("/metrics")
    server_errors = [
        line
        for line in metrics.splitlines()
        if 'status="5' in line and 'route="/readyz",status="503"' not in line
    ]
    assert not server_errors, server_errors
    assert metric_total(api, "moments_http_request_seconds_count", status="400") > 0


async def test_deeply_nested_json_is_a_4xx_not_a_500(pipeline: Pipeline) -> None:
    api = pipeline.start_api()
    for path in ("/v1/events", "/v1/outcomes"):
        for nested in (b"[" * 1000 + b"]" * 1000, b'{"a":' * 1000 + b"1" + b"}" * 1000):
            reply = await call("POST", api.url + path, headers=DEV_AUTH, data=nested)
            assert 400 <= reply.status < 500, reply
            assert_error(reply, reply.status)


async def test_a_body_in_another_charset_than_utf8_is_a_415_naming_it(
    pipeline: Pipeline,
) -> None:
    """The charset was ignored and the body read as UTF-8: a Latin-1 body whose bytes
    happen to be valid UTF-8 was taken with another customer id than the one sent, and a
    UTF-16 body was called malformed JSON. UTF-8, however written, is taken."""
    api = pipeline.start_api()
    latin = event("web_click", "Jos\u00c3\u00a9-1", "charset-1")  # "JosÃ©" read as UTF-8
    sent = json.dumps(latin, ensure_ascii=False).encode("utf-8")  # valid UTF-8 bytes
    for path, data, charset in (
        ("/v1/events", sent, "iso-8859-1"),
        ("/v1/events", json.dumps(latin).encode("utf-16"), "UTF-16"),
        ("/v1/outcomes", json_bytes(outcome("d-1", "c-1", "o-1")), '"windows-1252"'),
        ("/v1/events", sent, "utf-8; charset=latin-1"),  # two: the answer must not guess
    ):
        reply = await call("POST", api.url + path, headers=DEV_AUTH, data=data,
                           content_type=f"application/json; charset={charset}")  # fmt: skip
        body = assert_error(reply, 415, "unsupported_media_type")
        named = charset.strip('"').rsplit("=", 1)[-1]
        assert f"charset {named!r} is not UTF-8" in body["message"], body
    for n, charset in enumerate(("UTF-8", "utf8", '"utf-8"')):
        taken = event("web_click", "c-1", f"charset-ok-{n}")
        reply = await call("POST", f"{api.url}/v1/events", headers=DEV_AUTH,
                           data=json_bytes(taken),
                           content_type=f"application/json; charset={charset}")  # fmt: skip
        assert reply.status == 202, (charset, reply)


async def test_method_not_allowed_says_which_methods_are(pipeline: Pipeline) -> None:
    api = pipeline.start_api()
    reply = await call("PUT", f"{api.url}/v1/events", headers=DEV_AUTH)
    assert_error(reply, 405, "method_not_allowed")
    assert reply.headers.get("Allow") == "POST", reply.headers
    # HEAD is no GET: a HEAD of recommendations must not take (and publish) a decision
    for path in ("/v1/customers/x/recommendations", "/v1/alerts/stream"):
        head = await call("HEAD", f"{api.url}{path}", headers=DEV_AUTH)
        assert head.status == 405 and head.headers.get("Allow") == "GET", (path, head)


async def test_error_bodies_never_repeat_a_customer_id_from_the_path(pipeline: Pipeline) -> None:
    """Gateways and clients log error bodies: a path's customer id must not be in them."""
    origin = "https://shop.example"
    api = pipeline.start_api(MOMENTS_API_CORS_ORIGINS=origin)
    customer = "alice.cooper@example.com"
    preflight = {"Origin": origin, "Access-Control-Request-Method": "GET"}
    for method, path, status, headers in (
        ("GET", f"/v1/customers/{customer}/recs", 404, DEV_AUTH),
        ("PUT", f"/v1/customers/{customer}", 405, DEV_AUTH),
        ("POST", f"/v1/customers/{customer}/recommendations", 405, {}),
        ("OPTIONS", f"/v1/customers/{customer}/recs", 404, preflight),
    ):
        reply = await call(method, f"{api.url}{path}", headers=headers)
        body = assert_error(reply, status)
        assert customer not in reply.body.decode(), (method, path, body)
        if status == 405:
            assert body["message"].endswith(reply.headers["Allow"]), body


async def test_an_item_larger_than_a_kafka_record_is_a_413_and_kafka_stays_ready(
    pipeline: Pipeline,
) -> None:
    """Within the body limit (1 MiB), past what the broker takes in one record: it was
    answered 503 "retry" for ever, and /readyz said Kafka was down."""
    api = pipeline.start_api()
    big = event("web_click", "err-big", "big-1") | {"note": "a" * 1_040_000}
    reply = await call("POST", f"{api.url}/v1/events", headers=DEV_AUTH, body=[big])
    details = assert_error(reply, 413, "record_too_large")["details"]
    assert details[0]["index"] == 0, details
    ready = await call("GET", f"{api.url}/readyz")
    assert ready.json["checks"]["kafka"] == "ok", ready
    # a whole body of ordinary events is taken as ever
    reply = await call("POST", f"{api.url}/v1/events", headers=DEV_AUTH,
                       body=[event("web_click", "err-big", "small-1")])  # fmt: skip
    assert reply.status == 202, reply


async def test_requests_that_cannot_be_read_are_logged_as_a_few_warnings_with_a_count(
    pipeline: Pipeline,
) -> None:
    """Each was an ERROR line of its own, from anyone, no key needed: a log to fill and
    alerts on errors to set off. Now the first is a warning, and those that follow within
    a few seconds one more line that counts them; the request is never quoted."""
    api = pipeline.start_api()
    unreadable = [
        b"GET /v1/customers/cust SECRET/export HTTP/1.1\r\nHost: api\r\n\r\n",  # a space
        b"GET /healthz HTTP/1.1\r\nHost: api\r\n"
        + b"".join(b"X-Secret-%d: cust-SECRET\r\n" % i for i in range(40))
        + b"\r\n",
    ]
    for i in range(30):
        reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
        writer.write(unreadable[i % 2])
        await writer.drain()
        assert (await asyncio.wait_for(reader.read(100), 5)).split(b" ")[1] == b"400"
        writer.close()
    await asyncio.sleep(LOG_EVERY_S + 1.5)
    log = api.log_path.read_text()
    said = [line for line in log.splitlines() if "could not be read as HTTP" in line]
    assert len(said) == 2, said
    assert " WARNING " in said[0] and "a request could not be read" in said[0], said
    assert " WARNING " in said[1] and "29 more requests" in said[1], said
    assert "(BadHttpMessage: 15, BadStatusLine: 14)" in said[1], said  # by kind
    assert " ERROR " not in log and "could not read a request" not in log, log[-2000:]
    assert "SECRET" not in log
