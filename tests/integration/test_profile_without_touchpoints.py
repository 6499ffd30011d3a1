"""A customer Moments decided for, but of whom no touchpoint was applied yet (a web
visitor, here one held out in the control group, whose recommendations were asked for),
has a profile: the features of a customer it knows nothing else of, and those decisions.
It was a 404 "holds no profile", while the export listed the decisions."""

from __future__ import annotations

import jsonschema
import pytest

from tests.integration.conftest import Pipeline
from tests.integration.test_api_support import DEV_AUTH, assert_error, call

pytestmark = pytest.mark.integration


async def test_a_customer_with_decisions_alone_has_a_profile(pipeline: Pipeline) -> None:
    api = pipeline.start_api(MOMENTS_CONTROL_PERCENT="100")  # every customer held out
    url = f"{api.url}/v1/customers/c-new1"
    for _ in range(2):
        answer = await call("GET", f"{url}/recommendations", headers=DEV_AUTH)
        assert answer.status == 200 and answer.json["control"] is True, answer

    profile = await call("GET", url, headers=DEV_AUTH)
    assert profile.status == 200, profile
    body = profile.json
    assert body["customer_id"] == "c-new1" and body["control_group"] is True
    assert body["features"]["events"] == 0 and body["recent_touchpoints"] == []
    assert len(body["recent_decisions"]) == 2
    spec = (await call("GET", f"{api.url}/openapi.json")).json
    described = spec["paths"]["/v1/customers/{customer_id}"]["get"]["responses"]["200"]
    jsonschema.validate(body, described["content"]["application/json"]["schema"])

    export = await call("GET", f"{url}/export", headers=DEV_AUTH)
    assert export.status == 200, export
    assert export.json["profile"]["recent_decisions"] == body["recent_decisions"]

    assert (await call("DELETE", url, headers=DEV_AUTH)).status == 200
    assert_error(await call("GET", url, headers=DEV_AUTH), 404, "not_found")
