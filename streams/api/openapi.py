"""The OpenAPI 3.1 description of the Moments HTTP API (served at ``/openapi.json``):
its paths are in :mod:`streams.api.openapi_paths`, its schemas in
:mod:`streams.api.openapi_schemas`."""

from __future__ import annotations

import functools
from typing import Any

import msgspec

from streams.api.auth import SCOPES
from streams.api.openapi_paths import openapi_paths
from streams.api.openapi_schemas import ALERT, ERROR_SCHEMA, TOUCHPOINT, WIRE_SCHEMAS
from streams.settings import Settings


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
    return {
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
                "Error": ERROR_SCHEMA,
                **WIRE_SCHEMAS, "Touchpoint": TOUCHPOINT, "Alert": ALERT,
            },
        },
        "paths": openapi_paths(max_items, max_bytes),
        "x-scopes": list(SCOPES),
    }  # fmt: skip
