"""The schemas of the OpenAPI document (:mod:`streams.api.openapi`): the wire formats,
generated from the msgspec structs that decode Kafka input, and the bodies of the answers
(an error, a recommendation, a profile, an erasure's receipt, the probes')."""

from __future__ import annotations

from typing import Any

import msgspec

from agents.alert_actions import ACTIONS
from schemas import Intervention, NextBestOffer, Offer, Outcome, TouchpointEvent
from schemas.customer_ids import ID_PATTERN

LIVE = {"type": "object", "required": ["status"], "additionalProperties": False,
        "properties": {"status": {"const": "ok"}}}  # fmt: skip


def readiness(*statuses: str) -> dict[str, Any]:
    """/readyz's answer: its status, and each check's "ok" or what is wrong ("down", or
    "starting: ..." for what a start waits for)."""
    checks = {name: {"type": "string"} for name in ("kafka", "redis", "alerts", "models")}
    return {"type": "object", "required": ["status", "checks"], "additionalProperties": False,
            "properties": {"status": {"enum": list(statuses)}, "checks": {
                "type": "object", "required": list(checks), "additionalProperties": False,
                "properties": checks}}}  # fmt: skip


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
ERROR_SCHEMA = {"type": "object", "required": ["error", "message"], "properties": {
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
(TOUCHPOINT, OUTCOME, _DECISION, _OFFER, _INTERVENTION), WIRE_SCHEMAS = ecma_patterns(
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
# over HTTP carries more (see LISTED_OFFER), as any answer may in later versions.
WIRE_SCHEMAS["Offer"].pop("additionalProperties", None)
# as answered over HTTP: each offer with its title from the catalogue it was decided with
RECOMMENDATION = {"allOf": [_DECISION, {"type": "object", "properties": {"offers": {
    "type": "array", "items": {"type": "object", "properties": {
        "title": {"type": "string"}}}}}}]}  # fmt: skip
LISTED_OFFER = {"allOf": [_OFFER, {"type": "object", "required": ["available_now"],
    "properties": {"available_now": {"type": "boolean"},
                   "shown_today": {"anyOf": [{"type": "integer", "minimum": 0},
                                             {"type": "null"}]}}}]}  # fmt: skip

# an alert as the stream sends it (each event's data): the intervention, as on Kafka, with
# the customer's keyed hash added (what erasure notices name them by)
ALERT = {"allOf": [_INTERVENTION, {"type": "object", "required": ["customer_ref"],
    "properties": {"customer_ref": {"type": "string"}, "kind": {"type": "string",
        "description": f"One of {', '.join(ACTIONS)} (others may come: show an unknown "
                       "one as its suggested_action says)."}}}]}  # fmt: skip

PROFILE = {"type": "object", "required": [
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
RECEIPT = {"type": "object", "required": [
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
