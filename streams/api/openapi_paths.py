"""The paths of the OpenAPI document (:mod:`streams.api.openapi`): each operation of the
HTTP API, with its parameters, its request body and its answers."""

from __future__ import annotations

from typing import Any

from streams.api.openapi_schemas import (
    LISTED_OFFER,
    LIVE,
    OUTCOME,
    PROFILE,
    RECEIPT,
    RECOMMENDATION,
    readiness,
)

_ERROR = {"$ref": "#/components/schemas/Error"}


def _errors(*codes: int) -> dict[str, Any]:
    return {
        str(code): {"description": "error", "content": {"application/json": {"schema": _ERROR}}}
        for code in codes
    }


def _json(schema: dict[str, Any], description: str = "ok") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ID = {"type": "string", "minLength": 1, "maxLength": 256}
_CUSTOMER = {"name": "customer_id", "in": "path", "required": True, "schema": _ID,
             "description": "Compared exactly as sent (no normalisation, case folding or "
             "trimming); percent-encoded UTF-8 (a `%` without two hexadecimal digits, or "
             "bytes that are not UTF-8, is a 400 `invalid_customer_id`). Recommendations "
             "also refuse (400) `.` and `..`, one of only whitespace, and one holding a "
             "control character, as touchpoints and outcomes do (422)."}  # fmt: skip
_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]


def _accepted(ids: str) -> dict[str, Any]:
    return _json({"type": "object", "required": ["accepted", ids], "properties": {
        "accepted": {"type": "integer", "description": "items taken (those of an erased "
                     "customer among them, which are not written: the answer does not tell "
                     "who was erased)"},
        ids: {"type": "array", "items": {"type": "string"}, "description": "theirs, in the "
              "order sent"}}}, "accepted")  # fmt: skip


def _body(item: dict[str, Any], max_items: int, max_bytes: int) -> dict[str, Any]:
    return {
        "required": True,
        "description": f"One item, or a list of 1 to {max_items}; at most {max_bytes} bytes "
        "(413 `body_too_large`). It may be sent compressed, with `Content-Encoding: gzip` "
        "or `deflate`: the API inflates it to at most that limit too (413 past it; 400 "
        "`malformed_body` when it does not inflate); another encoding is answered 415 "
        "`unsupported_content_encoding` (a `Transfer-Encoding` other than `chunked`, 400 "
        "`unsupported_transfer_encoding`). It is JSON in UTF-8: a `charset` other than "
        "`utf-8` (or `utf8`) is answered 415 `unsupported_media_type`, and an item in "
        "which an object names a key twice 422 (JSON readers differ on which one counts). "
        "While the API process receives "
        "MOMENTS_API_BODY_BUDGET_BYTES of bodies at once (one key a quarter of them), "
        "the body is refused before it is read: 503 `too_many_uploads`, with `Retry-After`.",
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        item,
                        {"type": "array", "items": item, "minItems": 1, "maxItems": max_items},
                    ]
                }
            }
        },
    }


def openapi_paths(max_items: int, max_bytes: int) -> dict[str, Any]:
    """The paths of the API and their operations, every one answering 417 too: a
    request body is one item or a list of at most ``max_items``, in at most
    ``max_bytes``."""
    return _with_expectation_failed({
        "/v1/customers/{customer_id}/recommendations": {"get": {
            "summary": "Ranked offers for the customer now; logs the exposure as a decision. "
                       "segment and context only for keys that also have "
                       "profile-read; for others reasons is empty.",
            "security": _SECURITY, "x-scope": "recommend",
            "parameters": [_CUSTOMER,
                {"name": "channel", "in": "query",
                 "schema": {"enum": ["web", "email", "sms", "call"], "default": "web"}},
                {"name": "limit", "in": "query",
                 "schema": {"type": "integer", "minimum": 1, "maximum": 10, "default": 3}}],
            "responses": {"200": _json(RECOMMENDATION), **_errors(400, 401, 429),
                "403": {"description": "`forbidden`: the key lacks the scope "
                        "recommend, is bound to other origins, or is bound to other "
                        "channels than the one asked (`name:recommend=web:...` in "
                        "MOMENTS_API_KEYS); nothing is decided or recorded",
                        "content": {"application/json": {"schema": _ERROR}}}},
        }},
        "/v1/customers/{customer_id}": {
            "get": {"summary": "The customer's profile.", "security": _SECURITY,
                    "description": "`control_group` is true for a customer in the "
                    "hold-out group, who gets no offers (keep them out of manual "
                    "campaigns too, or the measured lift is blurred).",
                    "x-scope": "profile-read", "parameters": [_CUSTOMER],
                    "responses": {"200": _json(PROFILE),
                        **_errors(400, 401, 403, 404, 429, 503)}},
            "delete": {"summary": "Erase the customer from Moments' store and block "
                                  "them; the topics keep records until retention.",
                       "description": "Removes every Redis key of the customer, blocks "
                                      "the id (by keyed hash) so that replays and late "
                                      "events do not bring them back, and writes an "
                                      "erasure record to Kafka. Records already on the "
                                      "topics stay there until their retention "
                                      "(`kept_in_topics` lists them): set it to what "
                                      "erasure requests allow. With "
                                      "MOMENTS_ERASURE_REPLICAS, answered once that many "
                                      "replicas of Redis confirm the erasure, else 503 "
                                      "`replicas_unconfirmed` (erased on the primary and "
                                      "recorded in Kafka: retry).",
                       "security": _SECURITY, "x-scope": "erase", "parameters": [_CUSTOMER],
                       "responses": {"200": _json(RECEIPT),
                                     **_errors(400, 401, 403, 429, 503)}},
        },
        "/v1/customers/{customer_id}/export": {"get": {
            "summary": "Everything Moments keeps about the customer (right of access).",
            "description": "The profile as `GET /v1/customers/{id}` shows it (null for "
                           "an erased customer, or one of whom only decisions are "
                           "kept), every decision whose context is still kept, the "
                           "ids of every decision listed (`decision_ids`, also those "
                           "whose context expired), the "
                           "outcomes claimed for learning, the events applied, the "
                           "stored hashes as they are, and the topics that keep "
                           "records keyed by the customer id until their retention. "
                           "An erased customer has only `erased_at`, and "
                           "`withdrawals_kept`: the names of the withdrawals their "
                           "erasure kept, still honoured.",
            "security": _SECURITY, "x-scope": "export", "parameters": [_CUSTOMER],
            "responses": {"200": _json({"type": "object", "required": [
                "customer_id", "subject", "exported_at", "erased_at", "profile",
                "decisions", "decision_ids", "outcomes", "events_applied", "stored",
                "kept_in_topics"],
                "properties": {
                    "customer_id": {"type": "string"},
                    "subject": {"type": "string"},
                    "exported_at": {"type": "string", "format": "date-time"},
                    "erased_at": {"type": ["string", "null"]},
                    "withdrawals_kept": {"type": "array", "items": {"type": "string"}},
                    "profile": {"type": ["object", "null"]},
                    "decisions": {"type": "array", "items": {"type": "object"}},
                    "decision_ids": {"type": "array", "items": {"type": "object",
                        "required": ["decision_id", "at"], "properties": {
                            "decision_id": {"type": "string"},
                            "at": {"type": ["string", "null"]}}}},
                    "outcomes": {"type": "array", "items": {"type": "object",
                        "required": ["decision_id", "outcome"], "properties": {
                            "decision_id": {"type": "string"},
                            "offer_id": {"type": ["string", "null"]},
                            "outcome": {"type": "string"},
                            "claimed_at": {"type": ["string", "null"]}}}},
                    "events_applied": {"type": "array", "items": {"type": "object",
                        "required": ["id", "applied_at"]}},
                    "stored": {"type": "object"},
                    "kept_in_topics": {"type": "array", "items": {"type": "object",
                        "required": ["topic", "holds"]}},
                    "unreadable": {"type": "array", "items": {"type": "string"},
                        "description": "the parts Redis holds in a form that could "
                        "not be read (`profile`, `decisions`, `decision_ids`, "
                        "`outcomes`, `events_applied`, `erased_at`, "
                        "`withdrawals_kept`, `stored.<hash>`): left empty, a time no "
                        "date can hold shown as null, a decision that does not "
                        "decode left out; empty when all was read"}}}),
                **_errors(400, 401, 403, 404, 429, 503)},
        }},
        "/v1/offers": {"get": {
            "summary": "The offer catalogue in use, with today's use of daily budgets.",
            "description": "`available_now` says whether an offer's dates allow it now; "
                           "`shown_today` (offers with a `daily_limit`) counts the times "
                           "it was shown today (in the catalogue's timezone) across all "
                           "processes, null when it could not be read (Redis "
                           "away; or a count that is no integer, or the day's "
                           "counts a key of another type, whose offers are not "
                           "made until they are mended or the day ends); "
                           "`budgets_read` is false when any was not read. "
                           "`contact_caps` are the fatigue caps per channel: decisions "
                           "with offers one customer may get per day and per seven "
                           "days of their own (from their local midnight, in their "
                           "timezone where a touchpoint told it, else in "
                           "`contact_timezone`), and the local times (`HH:MM-HH:MM` in "
                           "`contact_timezone`, or in the customer's own timezone where "
                           "a touchpoint told it) when the channel makes no offers; "
                           "`consent_required`: offers there need consent the customer "
                           "granted (opt-in), else consent holds until withdrawn. "
                           "`outbound_caps` bound email, sms and call together (null: "
                           "no such cap).",
            "security": _SECURITY, "x-scope": "recommend",
            "parameters": [{"name": "channel", "in": "query",
                            "schema": {"enum": ["web", "email", "sms", "call"]}}],
            "responses": {"200": _json({"type": "object", "required": [
                "catalogue_version", "default_offers", "budgets_read", "offers",
                "contact_caps"],
                "properties": {"catalogue_version": {"type": "string"},
                               "default_offers": {"type": "array",
                                                  "items": {"type": "string"}},
                               "budgets_read": {"type": "boolean"},
                               "offers": {"type": "array", "items": LISTED_OFFER},
                               "contact_caps": {"type": "object", "additionalProperties": {
                                   "type": "object", "required": ["day", "week"],
                                   "properties": {
                                       "day": {"type": "integer", "minimum": 0},
                                       "week": {"type": "integer", "minimum": 0},
                                       "quiet_hours": {"type": ["string", "null"]},
                                       "consent_required": {"type": "boolean"}}}},
                               "contact_timezone": {"type": "string"},
                               "outbound_caps": {"type": "object", "properties": {
                                   "channels": {"type": "array",
                                                "items": {"type": "string"}},
                                   "day": {"type": ["integer", "null"], "minimum": 0},
                                   "week": {"type": ["integer", "null"], "minimum": 0},
                               }}}}),
                **_errors(400, 401, 403, 429)},
        }},
        "/v1/events": {"post": {
            "summary": "Validate touchpoints and produce them to Kafka.",
            "description": "Beyond the schema, a 422 names an item whose survey "
                           "`score` is outside its `scale` (csat5 1 to 5, nps 0 to "
                           "10), whose `ts` is more than MOMENTS_MAX_FUTURE_SKEW_S "
                           "ahead of the server's clock, or has a leap second.",
            "security": _SECURITY, "x-scope": "ingest",
            "requestBody": _body({"$ref": "#/components/schemas/Touchpoint"}, max_items,
                                 max_bytes),
            "responses": {"202": _accepted("event_ids"),
                          **_errors(400, 401, 403, 408, 413, 415, 422, 429, 503)},
        }},
        "/v1/outcomes": {"post": {
            "summary": "Report what customers did with offers (scope outcomes, or "
                       "ingest, which grants it).",
            "security": _SECURITY, "x-scope": "outcomes",
            "requestBody": _body(OUTCOME, max_items, max_bytes),
            "responses": {"202": _accepted("decision_ids"),
                          **_errors(400, 401, 403, 408, 413, 415, 422, 429, 503)},
        }},
        "/v1/alerts/stream": {"get": {
            "summary": "Server-Sent Events of interventions; resumable with Last-Event-ID.",
            "description": "An unnamed event (EventSource's `message`; `event: "
                           "intervention` with `?alert_event=intervention`) carries "
                           "one intervention, with "
                           "`customer_ref` added: a keyed hash of the customer id "
                           "(its data: `#/components/schemas/Alert`). Its "
                           "id is the stream's position: `<partition>-<offset>` pairs "
                           "joined by `.`, the newest offset passed in each partition, "
                           "so that any API replica resumes the stream without a gap; "
                           "`event: erasure`, with no id, names a customer just "
                           "erased, whose alerts screens must drop: by "
                           "`{\"customer_id\", \"customer_ref\"}` to the streams that "
                           "sent an alert about that customer, and by "
                           "`{\"customer_ref\"}` alone to any other stream resumed "
                           "with Last-Event-ID (which first gets one for each "
                           "customer this process saw erased in the last 24 hours); "
                           "`event: gap`, with no id, carries `{\"missed\": "
                           "[{\"partition\", \"after\", \"before\"}]}`: alerts after "
                           "the resumed position that are no longer buffered; "
                           "`event: position`, with an id and `{}`, tells where the "
                           "stream is after alerts the screen was not sent (other "
                           "queues') or a gap it was told, for it to resume from; it is "
                           "also the keep-alive, written whenever the stream has "
                           "written nothing for 15 s (`MOMENTS_API_ALERT_KEEPALIVE_S`; "
                           "with no id while it has passed "
                           "nothing): a screen that hears nothing for much longer has "
                           "a stalled stream, to open anew with its Last-Event-ID. A key "
                           "holds at most `MOMENTS_API_MAX_STREAMS_PER_KEY` streams "
                           "open at once; one more is answered 429 "
                           "`too_many_streams`.",
            "security": [*_SECURITY, {"apiKeyQuery": []}], "x-scope": "profile-read",
            "parameters": [
                {"name": "queue", "in": "query", "schema": {"type": "string"},
                 "description": "Only this queue's alerts, and those for no queue."},
                {"name": "erasures", "in": "query",
                 "schema": {"type": "string", "enum": ["ref"]},
                 "description": "Accepted for screens that ask for it; every "
                 "stream is told of erasures of customers it was not sent alerts "
                 "about by `customer_ref` alone."},
                {"name": "alert_event", "in": "query",
                 "schema": {"type": "string", "enum": ["intervention", ""]},
                 "description": "Name the alerts' events `intervention` (as they "
                 "were before 2026-12-05), for screens that listen for that name; "
                 "empty: unnamed events; left out: as the deployment says "
                 "(`MOMENTS_API_ALERT_EVENT`, unnamed by default)."},
                {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"},
                 "description": "Resume from this position (EventSource sends it). "
                 "An id that is not a position of this stream resumes from no "
                 "position: the stream sends every alert still buffered, as without "
                 "one, after the erasures of the last day (`erasure` events, by "
                 "`customer_ref`), as to any screen that resumes: it may hold cards."},
                {"name": "last_event_id", "in": "query", "schema": {"type": "string"},
                 "description": "The same, for clients that cannot send the header."}],
            "responses": {"200": {"description": "text/event-stream; each alert's data "
                                  "is an Alert", "content": {"text/event-stream": {
                                      "schema": {"type": "string"}}}, "x-event-data": {
                                      "$ref": "#/components/schemas/Alert"}},
                          **_errors(400, 401, 403, 429, 503)},
        }},
        "/console": {"get": {"summary": "The contact-centre screen.",
                             "responses": {"200": {"description": "HTML", "content": {
                                 "text/html": {"schema": {"type": "string"}}}}}}},
        "/openapi.json": {"get": {"summary": "This description.",
                                  "responses": {"200": _json({"type": "object"})}}},
        "/healthz": {"get": {"summary": "Liveness.", "responses": {"200": _json(
            LIVE)}}, "head": _probe_head("Liveness")},
        "/readyz": {"get": {"summary": "Readiness.", "responses": {
            "200": _json(readiness("ready", "degraded"),
                         "ready; `degraded` while Kafka or Redis is down (the API still "
                         "answers: default offers, 503s that say retry)"),
            "503": _json(readiness("not_ready"), "not ready: still starting (what it "
                         "waits for is named in `checks`)")}},
            "head": _probe_head("Readiness", 503)},
        "/metrics": {"get": {"summary": "Prometheus metrics.", "responses": {"200": {
            "description": "Prometheus' text format", "content": {"text/plain": {
                "schema": {"type": "string"}}}}}}},
    })  # fmt: skip


def _probe_head(summary: str, *statuses: int) -> dict[str, Any]:
    """A probe asked with HEAD (some load balancers do): answered as GET, without a body."""
    answers = {
        str(status): {"description": "as GET, without a body"} for status in (200, *statuses)
    }
    return {"summary": f"{summary}, without a body.", "responses": answers}


def _with_expectation_failed(paths: dict[str, Any]) -> dict[str, Any]:
    """Every operation may answer 417: a request with an ``Expect`` header other than
    ``100-continue`` is refused before it is read (see ``protocol_errors``)."""
    for operations in paths.values():
        for operation in operations.values():
            operation["responses"].setdefault("417", _errors(417)["417"])
    return paths
