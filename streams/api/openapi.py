"""The OpenAPI 3.1 description of the Moments HTTP API (served at ``/openapi.json``)."""

from __future__ import annotations

import functools
from typing import Any

import msgspec

from agents.alert_actions import ACTIONS
from schemas import Intervention, NextBestOffer, Offer, Outcome, TouchpointEvent
from schemas.customer_ids import ID_PATTERN
from streams.api.auth import SCOPES
from streams.settings import Settings

_ERROR = {"$ref": "#/components/schemas/Error"}


def _errors(*codes: int) -> dict[str, Any]:
    return {
        str(code): {"description": "error", "content": {"application/json": {"schema": _ERROR}}}
        for code in codes
    }


def _json(schema: dict[str, Any], description: str = "ok") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_LIVE = {"type": "object", "required": ["status"], "additionalProperties": False,
         "properties": {"status": {"const": "ok"}}}  # fmt: skip


def _readiness(*statuses: str) -> dict[str, Any]:
    """/readyz's answer: its status, and each check's "ok" or what is wrong ("down", or
    "starting: ..." for what a start waits for)."""
    checks = {name: {"type": "string"} for name in ("kafka", "redis", "alerts", "models")}
    return {"type": "object", "required": ["status", "checks"], "additionalProperties": False,
            "properties": {"status": {"enum": list(statuses)}, "checks": {
                "type": "object", "required": list(checks), "additionalProperties": False,
                "properties": checks}}}  # fmt: skip


_ID = {"type": "string", "minLength": 1, "maxLength": 256}
_CUSTOMER = {"name": "customer_id", "in": "path", "required": True, "schema": _ID,
             "description": "Compared exactly as sent (no normalisation, case folding or "
             "trimming); percent-encoded UTF-8 (a `%` without two hexadecimal digits, or "
             "bytes that are not UTF-8, is a 400 `invalid_customer_id`). Recommendations "
             "also refuse (400) `.` and `..`, one of only whitespace, and one holding a "
             "control character, as touchpoints and outcomes do (422)."}  # fmt: skip
_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]
# Every `error` the API answers with (docs/http-api.md says when each comes).
ERROR_CODES = (
    "bad_request", "duplicate_header", "duplicate_parameter", "conflicting_credentials",
    "invalid_customer_id", "invalid_channel",
    "invalid_limit", "invalid_erasures", "invalid_alert_event", "malformed_json", "malformed_body",
    "incomplete_body", "empty", "unauthorized", "forbidden", "origin_not_allowed",
    "not_found", "method_not_allowed", "body_timeout", "body_too_large", "too_many_items",
    "record_too_large", "unsupported_media_type", "unsupported_content_encoding",
    "unsupported_transfer_encoding",
    "expectation_failed", "invalid_events", "invalid_outcomes", "rate_limited",
    "too_many_streams", "internal_error", "store_unavailable", "kafka_unavailable",
    "alerts_not_ready", "replicas_unconfirmed", "too_many_connections", "too_many_uploads",
)  # fmt: skip
_ERROR_SCHEMA = {"type": "object", "required": ["error", "message"], "properties": {
    "error": {"type": "string", "enum": list(ERROR_CODES), "description": "What went "
              "wrong, for clients to act on; `message` says it in English."},
    "message": {"type": "string"},
    "details": {"type": "array", "description": "Where there are some: one "
                "`{\"index\", \"reason\"}` per bad item (422), `{\"index\", \"bytes\"}` "
                "(`record_too_large`), `{\"header\"}` (`duplicate_header`), "
                "`{\"parameter\"}` (`duplicate_parameter`), or "
                "`{\"retry_after_s\"}`, the seconds of "
                "`Retry-After` (429, and the 503s `kafka_unavailable`, `alerts_not_ready`, "
                "`replicas_unconfirmed`, `too_many_connections` and `too_many_uploads`; "
                "`store_unavailable` has the header only)."}}}  # fmt: skip


def ecma_patterns(schema: Any) -> Any:
    """``schema`` with its patterns in the regular-expression dialect of JSON Schema
    (ECMA-262): Python's end of text ``\\Z`` becomes ``$``, which in ECMA-262 (without the
    ``m`` flag) matches there only, as ``\\Z`` does in Python (Python's ``$`` also matches
    before a final newline, which is why the structs use ``\\Z``).

    >>> ecma_patterns({"properties": {"currency": {"pattern": r"^[A-Z]{3}\\Z"}}})
    {'properties': {'currency': {'pattern': '^[A-Z]{3}$'}}}
    """
    if isinstance(schema, dict):
        return {
            key: value.replace("\\Z", "$")
            if key == "pattern" and isinstance(value, str)
            else ecma_patterns(value)
            for key, value in schema.items()
        }
    if isinstance(schema, list | tuple):
        return type(schema)(ecma_patterns(item) for item in schema)
    return schema


# The wire formats, generated from the same msgspec structs that decode Kafka input: per
# event type, its own fields and which are required (a tagged union on ``type``).
(_TOUCHPOINT, _OUTCOME, _DECISION, _OFFER, _INTERVENTION), WIRE_SCHEMAS = ecma_patterns(
    msgspec.json.schema_components(
        [TouchpointEvent, Outcome, NextBestOffer, Offer, Intervention],
        ref_template="#/components/schemas/{name}",
    )
)
# Fields with a default are left out of "required" by msgspec, but Moments always sends
# them, and the contract promises these: a client generated from this document must not
# make them optional.
for _name, _fields in (("NextBestOffer", ["control", "model_version", "reasons"]),
                       ("Intervention", ["context"])):  # fmt: skip
    WIRE_SCHEMAS[_name]["required"] = [*WIRE_SCHEMAS[_name]["required"], *_fields]
# A survey's score range depends on its scale (Survey.__post_init__ checks it), which the
# struct's own schema cannot say.
WIRE_SCHEMAS["Survey"]["allOf"] = [
    {"if": {"properties": {"scale": {"const": scale}}},
     "then": {"properties": {"score": {"minimum": low, "maximum": high}}}}
    for scale, low, high in (("csat5", 1, 5), ("nps", 0, 10))
]  # fmt: skip
# What the structs' checks refuse beyond their types (``__post_init__``), said so that a
# client validating with this document refuses it too: a reach that is not a whole number,
# a customer id of only whitespace, a dot segment or with a control character.
for _branch in WIRE_SCHEMAS["SocialMention"]["properties"]["reach"]["anyOf"]:
    if _branch.get("type") == "number":
        _branch["multipleOf"] = 1
_ID_PATTERN = ecma_patterns({"pattern": ID_PATTERN})["pattern"]
for _schema in WIRE_SCHEMAS.values():
    if "customer_id" in _schema.get("properties", {}):
        _schema["properties"]["customer_id"]["pattern"] = _ID_PATTERN
# The catalogue file refuses keys it does not know (a misspelt limit); an offer listed
# over HTTP carries more (see _LISTED_OFFER), as any answer may in later versions.
WIRE_SCHEMAS["Offer"].pop("additionalProperties", None)
# as answered over HTTP: each offer with its title from the catalogue it was decided with
_RECOMMENDATION = {"allOf": [_DECISION, {"type": "object", "properties": {"offers": {
    "type": "array", "items": {"type": "object", "properties": {
        "title": {"type": "string"}}}}}}]}  # fmt: skip
_LISTED_OFFER = {"allOf": [_OFFER, {"type": "object", "required": ["available_now"],
    "properties": {"available_now": {"type": "boolean"},
                   "shown_today": {"anyOf": [{"type": "integer", "minimum": 0},
                                             {"type": "null"}]}}}]}  # fmt: skip

# an alert as the stream sends it (each event's data): the intervention, as on Kafka, with
# the customer's keyed hash added (what erasure notices name them by)
_ALERT = {"allOf": [_INTERVENTION, {"type": "object", "required": ["customer_ref"],
    "properties": {"customer_ref": {"type": "string"}, "kind": {"type": "string",
        "description": f"One of {', '.join(ACTIONS)} (others may come: show an unknown "
                       "one as its suggested_action says)."}}}]}  # fmt: skip

_PROFILE = {"type": "object", "required": [
    "customer_id", "segment", "value", "currency", "risk", "risk_model", "consent",
    "timezone", "control_group", "features", "recent_touchpoints", "recent_decisions"],
    "properties": {
        "customer_id": {"type": "string"}, "segment": {"type": "string"},
        "value": {"type": "number"},
        "currency": {"type": ["string", "null"], "description":
                     "what value and spend count in (MOMENTS_CURRENCY); null: not set"},
        "risk": {"type": "number", "minimum": 0, "maximum": 1},
        "risk_model": {"type": "object", "required": ["version", "basis"], "properties": {
            "version": {"type": "integer"},
            "basis": {"enum": ["model", "warming_up", "drift_detected"]}}},
        "consent": {"type": "object", "additionalProperties": {"type": "boolean"},
                    "description": "per channel as it binds: false once withdrawn (email:"
                                   " or unsubscribed); a channel not listed was neither"
                                   " granted nor withdrawn"},
        "timezone": {"type": ["string", "null"]}, "control_group": {"type": "boolean"},
        "features": {"type": "object"},
        "recent_touchpoints": {"type": "array", "items": {"type": "object"}},
        "recent_decisions": {"type": "array", "items": {"type": "object"},
            "description": "newest first, each as its topic carries it: a next-best "
            "offer (`decision_id`, `channel`, `offers`, as on next-best-offers) or an "
            "intervention (`intervention_id`, `kind`, `priority`, as on interventions); "
            "tell them apart by which id they hold"},
        "unreadable": {"type": "array", "items": {"enum": ["features", "recent_decisions"]},
            "description": "what Redis holds of the customer in a form that could not be "
            "read (a key of another type, a value that is no number, a time no date can "
            "hold, a decision cut short): `features` (shown as those of a customer Moments "
            "knows nothing else of), `recent_decisions` (those that could not be read are "
            "left out); empty when all was read"}}}  # fmt: skip
_RECEIPT = {"type": "object", "required": [
    "subject", "erased_at", "keys_removed", "erased", "blocked", "erasure_record",
    "kept_in_topics"],
    "properties": {
        "subject": {"type": "string", "description": "the customer's keyed hash"},
        "erased_at": {"type": "string", "format": "date-time",
                      "description": "when the customer was first erased"},
        "keys_removed": {"type": "integer", "minimum": 0},
        "erased": {"type": "array", "items": {"type": "string"},
                   "description": "the kinds of data removed"},
        "blocked": {"type": "boolean",
                    "description": "replays and late events cannot bring them back"},
        "withdrawals_kept": {"type": "array", "items": {"type": "string"},
            "description": "the customer's withdrawals (`consent:<channel>`, "
            "`subscribed:email`) kept beside the block, by name alone and as long: "
            "recommendations for the erased id still suppress those channels"},
        "erasure_record": {"type": "object", "required": ["topic", "partition", "offset"],
            "properties": {"topic": {"type": "string"}, "partition": {"type": "integer"},
                           "offset": {"type": "integer"}}},
        "kept_in_topics": {"type": "array", "description": "what the erasure does not "
            "reach: the topics that keep records of the customer until their retention",
            "items": {"type": "object", "required": ["topic", "holds"]}},
        "replicas_confirmed": {"type": "integer", "minimum": 0, "description": "how many of "
            "Redis's replicas confirmed the erasure (only where MOMENTS_ERASURE_REPLICAS "
            "asks for some; fewer than asked is a 503 `replicas_unconfirmed`)"}}}  # fmt: skip


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


def openapi_document(settings: Settings) -> bytes:
    """:func:`openapi_spec` as JSON, written once for the limits ``settings`` set (it
    took a millisecond a request: a client asking without end slowed recommendations)."""
    return _document(settings.api_max_items, settings.api_max_body_bytes)


@functools.lru_cache(maxsize=8)
def _document(max_items: int, max_bytes: int) -> bytes:
    return msgspec.json.encode(
        openapi_spec(Settings(api_max_items=max_items, api_max_body_bytes=max_bytes))
    )


def openapi_spec(settings: Settings | None = None) -> dict[str, Any]:
    """The description of this API as ``settings`` configure it (the defaults if none):
    ``maxItems`` is ``MOMENTS_API_MAX_ITEMS``, and the body limit
    ``MOMENTS_API_MAX_BODY_BYTES``."""
    settings = settings or Settings()
    max_items, max_bytes = settings.api_max_items, settings.api_max_body_bytes
    return _with_expectation_failed({
        "openapi": "3.1.0",
        "info": {"title": "Moments", "version": "1",
                 "description": "Real-time personalisation for CRM: live recommendations, "
                 "ingestion, customer profiles, erasure and contact-centre alerts. Every "
                 "error is JSON (`Error`). A method a path does not take is answered 405 "
                 "`method_not_allowed`, with `Allow`: HEAD too, on every GET path but "
                 "/healthz and /readyz, which answer it as GET, without a body (a HEAD of "
                 "recommendations would take and publish a decision)."},
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "apiKeyQuery": {"type": "apiKey", "in": "query", "name": "api_key",
                                "description": "Only on the alert stream, for browsers' "
                                "EventSource (which cannot send headers); prefer a header "
                                "there too: URLs end up in proxies' logs."},
            },
            "schemas": {
                "Error": _ERROR_SCHEMA,
                **WIRE_SCHEMAS, "Touchpoint": _TOUCHPOINT, "Alert": _ALERT,
            },
        },
        "paths": {
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
                "responses": {"200": _json(_RECOMMENDATION), **_errors(400, 401, 429),
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
                        "responses": {"200": _json(_PROFILE),
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
                           "responses": {"200": _json(_RECEIPT),
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
                                   "offers": {"type": "array", "items": _LISTED_OFFER},
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
                "requestBody": _body(_OUTCOME, max_items, max_bytes),
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
                _LIVE)}}, "head": _probe_head("Liveness")},
            "/readyz": {"get": {"summary": "Readiness.", "responses": {
                "200": _json(_readiness("ready", "degraded"),
                             "ready; `degraded` while Kafka or Redis is down (the API still "
                             "answers: default offers, 503s that say retry)"),
                "503": _json(_readiness("not_ready"), "not ready: still starting (what it "
                             "waits for is named in `checks`)")}},
                "head": _probe_head("Readiness", 503)},
            "/metrics": {"get": {"summary": "Prometheus metrics.", "responses": {"200": {
                "description": "Prometheus' text format", "content": {"text/plain": {
                    "schema": {"type": "string"}}}}}}},
        },
        "x-scopes": list(SCOPES),
    })  # fmt: skip


def _probe_head(summary: str, *statuses: int) -> dict[str, Any]:
    """A probe asked with HEAD (some load balancers do): answered as GET, without a body."""
    answers = {
        str(status): {"description": "as GET, without a body"} for status in (200, *statuses)
    }
    return {"summary": f"{summary}, without a body.", "responses": answers}


def _with_expectation_failed(spec: dict[str, Any]) -> dict[str, Any]:
    """Every operation may answer 417: a request with an ``Expect`` header other than
    ``100-continue`` is refused before it is read (see ``protocol_errors``)."""
    for operations in spec["paths"].values():
        for operation in operations.values():
            operation["responses"].setdefault("417", _errors(417)["417"])
    return spec
