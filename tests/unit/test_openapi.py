"""The published OpenAPI description: touchpoints per type, where a key may travel, and the
error codes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from schemas import EVENT_TYPES, encode_decision, encode_outcome
from schemas.decisions import Intervention, InterventionContext
from schemas.outcomes import Outcome
from streams import api
from streams.api.openapi import openapi_spec
from streams.api.screen_erasures import CustomerRefs, with_customer_ref
from tests.unit import factories as f

SPEC = openapi_spec()
COMPONENTS = SPEC["components"]["schemas"]


def validator(name: str) -> Draft202012Validator:
    """A validator for one component, resolving ``#/components/schemas/...`` refs."""
    registry: Registry[Any] = Registry().with_resource(
        "urn:moments", Resource(contents=SPEC, specification=DRAFT202012)
    )
    schema = {"$ref": f"urn:moments#/components/schemas/{name}"}
    return Draft202012Validator(schema, registry=registry)


def test_touchpoints_are_a_union_tagged_on_type_with_every_event_type() -> None:
    union = COMPONENTS["Touchpoint"]
    assert union["discriminator"]["propertyName"] == "type"
    assert set(union["discriminator"]["mapping"]) == set(EVENT_TYPES)


@pytest.mark.parametrize(
    ("component", "fields"),
    [
        ("Call", {"status", "direction", "reason"}),
        ("Purchase", {"order_id", "amount", "currency"}),
        ("Survey", {"score", "scale"}),
        ("Consent", {"channel", "granted"}),
        ("WebClick", {"page"}),
        ("Email", {"action"}),
        ("SocialMention", {"platform", "sentiment"}),
    ],
)
def test_each_event_type_names_its_own_required_fields(component: str, fields: set[str]) -> None:
    required = set(COMPONENTS[component]["required"])
    assert {"type", "event_id", "customer_id", "ts"} | fields <= required


EVENTS = [
    f.click(category="books"),
    f.purchase(12.5, categories=["books"]),
    f.consent("email", False, 0.0),
    f.survey(4, "csat5"),
    f.mention(-0.5, 100),
    f.email("opened"),
    f.call_started("cancel"),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.kind)
def test_real_events_match_the_published_schema(event: Any) -> None:
    document = msgspec.json.decode(msgspec.json.encode(event))
    assert list(validator("Touchpoint").iter_errors(document)) == []


def test_an_event_missing_a_field_of_its_type_breaks_the_schema() -> None:
    document = msgspec.to_builtins(f.call_started("cancel"))
    del document["reason"]
    assert list(validator("Touchpoint").iter_errors(document))


def test_outcomes_match_the_published_schema() -> None:
    outcome = Outcome(decision_id="d1", customer_id="c1", offer_id="o1", outcome="accepted",
                      ts=f.T0)  # fmt: skip
    document = msgspec.json.decode(encode_outcome(outcome))
    assert list(validator("Outcome").iter_errors(document)) == []
    del document["offer_id"]
    assert list(validator("Outcome").iter_errors(document))


def test_a_key_in_the_query_string_is_documented_for_the_alert_stream_only() -> None:
    where = [
        (path, method)
        for path, item in SPEC["paths"].items()
        for method, operation in item.items()
        if any("apiKeyQuery" in scheme for scheme in operation.get("security", []))
    ]
    assert where == [("/v1/alerts/stream", "get")]
    assert SPEC["components"]["securitySchemes"]["apiKeyQuery"]["in"] == "query"


def _patterns(schema: Any) -> list[str]:
    if isinstance(schema, dict):
        found = [schema["pattern"]] if isinstance(schema.get("pattern"), str) else []
        return found + [p for value in schema.values() for p in _patterns(value)]
    if isinstance(schema, list):
        return [p for item in schema for p in _patterns(item)]
    return []


def test_patterns_are_in_the_dialect_of_json_schema_not_pythons() -> None:
    """ECMA-262 reads Python's ``\\Z`` as a literal Z: a client validating against the
    description would refuse every currency code ("EUR") and take "EURZ"."""
    patterns = _patterns(SPEC)
    assert len(patterns) >= 2  # currency and offer ids
    for pattern in patterns:
        assert "\\Z" not in pattern and "\\A" not in pattern and "(?P" not in pattern, pattern
    purchase = validator("Purchase")
    base = {"type": "purchase", "event_id": "e1", "customer_id": "c1",
            "ts": "2026-11-23T14:05:00Z", "amount": 10.0, "order_id": "o1"}  # fmt: skip
    assert not list(purchase.iter_errors({**base, "currency": "EUR"}))
    assert list(purchase.iter_errors({**base, "currency": "EURZ"}))


def test_every_operation_may_answer_417_as_every_route_does() -> None:
    operations = [op for ops in SPEC["paths"].values() for op in ops.values()]
    assert operations and all("417" in op["responses"] for op in operations)


@pytest.mark.parametrize(
    ("scale", "score"),
    [("csat5", 1), ("csat5", 5), ("csat5", 0), ("csat5", 6), ("nps", 0), ("nps", 10),
     ("nps", -2.9e16), ("nps", 10.5)],
)  # fmt: skip
def test_a_surveys_score_is_described_within_its_scale_as_it_is_decoded(
    scale: str, score: float
) -> None:
    from schemas import InvalidEvent, decode_touchpoint

    survey = {"type": "survey", "event_id": "e1", "customer_id": "c1",
              "ts": "2026-11-23T10:00:00Z", "scale": scale, "score": score}  # fmt: skip
    try:
        decode_touchpoint(msgspec.json.encode(survey))
        decoded = True
    except InvalidEvent:
        decoded = False
    assert validator("Survey").is_valid(survey) is decoded


def _answered_codes() -> set[str]:
    """Every ``error`` code that streams/api names where it answers an error: an
    ``ApiError`` or ``error_response`` of a fixed code, and the codes it gives by status."""
    source = "\n".join(p.read_text() for p in Path(api.__file__).parent.glob("*.py"))
    found = set(re.findall(r'(?:ApiError|error_response)\(\s*\d{3},\s*"([a-z_]+)"', source))
    found |= set(re.findall(r'\b\d{3}: "([a-z_]+)"', source))  # the _CODES by status
    found |= set(re.findall(r'"error": "([a-z_]+)"', source))  # an answer written whole
    if 'f"invalid_{what}"' in source:  # ingestion's 422, named after what was posted
        found |= {"invalid_events", "invalid_outcomes"}
    return found


def test_the_error_codes_described_are_those_the_api_answers() -> None:
    described = COMPONENTS["Error"]["properties"]["error"]["enum"]
    assert len(described) == len(set(described))
    assert set(described) == _answered_codes()


def test_an_alert_as_the_stream_sends_it_matches_the_published_schema() -> None:
    """The stream's events were described in prose only: a screen's developer could find
    neither an intervention's fields nor its kinds (do_not_call) in the description."""
    alert = Intervention(
        intervention_id="iv-1",
        customer_id="c-1",
        ts=f.T0,
        kind="do_not_call",
        priority=1,
        trigger_event_id="e-1",
        reasons=["consent_withdrawn:call"],
        suggested_action="...",
        context=InterventionContext(segment="growth", risk=0.4, value=120.0),
    )
    data = with_customer_ref(encode_decision(alert), CustomerRefs(b"secret")("c-1"))
    document = msgspec.json.decode(data)
    assert list(validator("Alert").iter_errors(document)) == []
    assert "do_not_call" in str(COMPONENTS["Alert"])
    del document["customer_ref"]
    assert list(validator("Alert").iter_errors(document))


@pytest.mark.parametrize(
    ("component", "always_sent"),
    [("NextBestOffer", {"control", "model_version", "reasons"}), ("Intervention", {"context"})],
)
def test_fields_the_contract_promises_are_required_though_they_have_defaults(
    component: str, always_sent: set[str]
) -> None:
    """msgspec leaves a field with a default out of ``required``; Moments always sends
    these, and a client generated from the description made them optional."""
    assert always_sent <= set(COMPONENTS[component]["required"])


def _object_schemas(node: Any, where: str = "$") -> Any:
    """Every schema in the description that lists its properties, with where it is."""
    if isinstance(node, dict):
        if isinstance(node.get("properties"), dict):
            yield where, node
        for name, value in node.items():
            yield from _object_schemas(value, f"{where}.{name}")
    elif isinstance(node, list):
        for n, value in enumerate(node):
            yield from _object_schemas(value, f"{where}[{n}]")


def test_every_required_field_is_described() -> None:
    """The export's answer required `customer_id` and `exported_at` and described neither:
    code made from the description had no typed field for them."""
    undescribed = {
        where: sorted(set(schema.get("required", ())) - set(schema["properties"]))
        for where, schema in _object_schemas(SPEC)
    }
    assert {where: names for where, names in undescribed.items() if names} == {}


def test_every_answer_with_a_body_names_its_media_type() -> None:
    """The alert stream, the console and /metrics answered without a content type said."""
    bodiless = [
        f"{method.upper()} {path}"
        for path, operations in SPEC["paths"].items()
        for method, operation in operations.items()
        for status, answer in operation["responses"].items()
        if method != "head" and status.startswith("2") and "content" not in answer
    ]
    assert bodiless == []
    assert "head" in SPEC["paths"]["/healthz"] and "head" in SPEC["paths"]["/readyz"]


def _decodes(event: dict[str, Any]) -> bool:
    from schemas import InvalidEvent, decode_touchpoint

    try:
        decode_touchpoint(msgspec.json.encode(event))
    except InvalidEvent:
        return False
    return True


@pytest.mark.parametrize("reach", [0, 1200, 1200.0, 1.2e3, 12.5, 0.1, -1, None])
def test_a_mentions_reach_is_described_as_it_is_decoded(reach: Any) -> None:
    """12.5 was valid by the description, and refused (422) by the API."""
    mention = {"type": "social_mention", "event_id": "e1", "customer_id": "c1",
               "ts": "2026-11-23T10:00:00Z", "platform": "x", "sentiment": 0.1,
               "reach": reach}  # fmt: skip
    assert validator("SocialMention").is_valid(mention) is _decodes(mention)


@pytest.mark.parametrize(
    "customer_id",
    ["c1", "José", "x🎉y", "a b", " a", "...", "a.b", "\ufeff", " ", "   ", "\u3000",
     "\u00a0 \u2009", ".", "..", "a\x00b", "\u202eevil", "x\x85", "a\u2028b", "\t"],
)  # fmt: skip
def test_a_customer_id_is_described_as_it_is_decoded(customer_id: str) -> None:
    """An id of only whitespace (a producer's empty template), a dot segment or one with
    a control character was valid by the description, and refused by the API."""
    click = {"type": "web_click", "event_id": "e1", "customer_id": customer_id,
             "ts": "2026-11-23T10:00:00Z", "page": "/p"}  # fmt: skip
    assert validator("WebClick").is_valid(click) is _decodes(click)
    outcome = {"decision_id": "d1", "customer_id": customer_id, "offer_id": "o1",
               "outcome": "accepted", "ts": "2026-11-23T10:00:00Z"}  # fmt: skip
    assert validator("Outcome").is_valid(outcome) is _decodes(click)


def _answer(path: str, status: str) -> Draft202012Validator:
    schema = SPEC["paths"][path]["get"]["responses"][status]["content"]["application/json"]
    return Draft202012Validator(schema["schema"])


@pytest.mark.parametrize(
    ("status", "answer"),
    [
        (
            "200",
            {
                "status": "ready",
                "checks": dict.fromkeys(("kafka", "redis", "alerts", "models"), "ok"),
            },
        ),
        (
            "200",
            {
                "status": "degraded",
                "checks": {"kafka": "down", "redis": "ok", "alerts": "ok", "models": "ok"},
            },
        ),
        (
            "503",
            {
                "status": "not_ready",
                "checks": {
                    "kafka": "ok",
                    "redis": "ok",
                    "alerts": "ok",
                    "models": "starting: loading the snapshots",
                },
            },
        ),
    ],
)
def test_readiness_answers_are_described_as_they_are_sent(
    status: str, answer: dict[str, Any]
) -> None:
    """Both answers were described as any object, the 503 as "ok": a probe's author could
    find neither the statuses nor the checks."""
    assert list(_answer("/readyz", status).iter_errors(answer)) == []
    other = "503" if status == "200" else "200"
    assert list(_answer("/readyz", other).iter_errors(answer))  # each status its own
    assert list(_answer("/readyz", status).iter_errors({**answer, "checks": {}}))
    assert "ok" not in SPEC["paths"]["/readyz"]["get"]["responses"]["503"]["description"][:3]


def test_liveness_is_described_as_it_is_sent() -> None:
    assert list(_answer("/healthz", "200").iter_errors({"status": "ok"})) == []
    assert list(_answer("/healthz", "200").iter_errors({"status": "down"}))
