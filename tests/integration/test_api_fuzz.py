"""Property-based fuzzing of the HTTP API from its own /openapi.json (schemathesis 4).

A real ``moments api`` process on real Kafka and Redis is fuzzed operation by operation
with positive and negative data: no request may get a 5xx, and every documented
response must match the schema the API publishes. The SSE stream is left out (it never
ends). Hypothesis is driven directly (``operation.as_strategy()``): schemathesis'
``pytest.from_fixture`` does not run under pytest 9.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance
from schemathesis.errors import FailureGroup

from tests.integration.conftest import Pipeline

pytestmark = pytest.mark.integration

DEV_KEY = "moments-dev-key"  # accepted when MOMENTS_API_KEYS is unset
AUTH = {"Authorization": f"Bearer {DEV_KEY}"}
CHECKS = [not_a_server_error, response_schema_conformance]
MAX_EXAMPLES = 30  # per operation and mode
STREAMING = "/v1/alerts/stream"


def load_schema(url: str) -> Any:
    config = schemathesis.Config.from_dict(
        {
            "base-url": url,
            "headers": AUTH,
            "request-timeout": 10,
            "generation": {"with-security-parameters": False, "database": "none"},
        }
    )
    return schemathesis.openapi.from_url(f"{url}/openapi.json", config=config)


def requests_by_route(metrics: str) -> dict[str, dict[int, float]]:
    """Request counts per route and status (over its methods), from
    moments_http_request_seconds."""
    served: dict[str, dict[int, float]] = {}
    for line in metrics.splitlines():
        found = re.match(r"moments_http_request_seconds_count\{(.*)\} (\S+)$", line)
        if found:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', found.group(1)))
            counts = served.setdefault(labels["route"], {})
            status = int(labels["status"])
            counts[status] = counts.get(status, 0.0) + float(found.group(2))
    return served


def fuzz(operation: Any, mode: GenerationMode, session: requests.Session) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=False,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(session=session, headers=AUTH, checks=CHECKS, timeout=10)

    run()


def test_api_fuzz_no_server_errors_and_responses_match_schema(pipeline: Pipeline) -> None:
    # No rate limit in the way (429 is documented, but would hide everything else), and
    # a generous latency budget so a slow machine does not turn answers into fallbacks.
    api = pipeline.start_api(
        MOMENTS_API_RATE_PER_S="100000", MOMENTS_API_BURST="100000", MOMENTS_API_BUDGET_MS="2000"
    )
    schema = load_schema(api.url)
    operations = [r.ok() for r in schema.get_all_operations()]
    labels = {op.label for op in operations}
    assert {
        "GET /v1/customers/{customer_id}/recommendations",
        "GET /v1/customers/{customer_id}",
        "DELETE /v1/customers/{customer_id}",
        "POST /v1/events",
        "POST /v1/outcomes",
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
    } <= labels, labels
    failures: list[str] = []
    with requests.Session() as session:
        for operation in operations:
            if operation.path == STREAMING:
                continue
            modes = [GenerationMode.POSITIVE]
            if any(True for _ in operation.iter_parameters()) or operation.body:
                modes.append(GenerationMode.NEGATIVE)  # there is something to get wrong
            for mode in modes:
                try:
                    fuzz(operation, mode, session)
                except FailureGroup as exc:
                    failures.append(f"{operation.label} ({mode.value}):\n{exc}")
    assert not failures, "\n\n".join(f[:4000] for f in failures)

    # The fuzz really reached the views, with data they accepted and data they refused.
    served = requests_by_route(api.get("/metrics")[1])
    for route in (
        "/v1/customers/{customer_id}/recommendations",
        "/v1/customers/{customer_id}",
        "/v1/events",
        "/v1/outcomes",
    ):
        statuses = served.get(route, {})
        assert sum(statuses.values()) >= MAX_EXAMPLES, (route, statuses)
        assert any(400 <= s < 500 for s in statuses), (route, statuses)
        if route != "/v1/events":  # its schema does not say which fields each type needs
            assert any(200 <= s < 300 for s in statuses), (route, statuses)


def test_fuzz_checks_flag_server_errors_and_schema_breaks(pipeline: Pipeline) -> None:
    """The two checks used above can fail: a 500, and a 200 that breaks the schema."""
    api = pipeline.start_api()
    schema = load_schema(api.url)
    operation = schema["/v1/customers/{customer_id}/recommendations"]["GET"]
    case = operation.Case(path_parameters={"customer_id": "fuzz-probe"})
    good = requests.get(f"{api.url}/v1/customers/fuzz-probe/recommendations", headers=AUTH)
    assert good.status_code == 200
    case.validate_response(good, checks=CHECKS)  # a real answer passes

    def forged(status: int, body: bytes) -> requests.Response:
        response = requests.Response()
        response.status_code, response._content = status, body
        response.headers["Content-Type"] = "application/json"
        response.request, response.url = good.request, good.url
        return response

    with pytest.raises(FailureGroup, match="Server error"):
        case.validate_response(forged(500, b'{"error": "x", "message": "y"}'), checks=CHECKS)
    with pytest.raises(FailureGroup, match="schema"):
        case.validate_response(forged(200, b'{"decision_id": 1}'), checks=CHECKS)
