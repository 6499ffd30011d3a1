"""Cross-origin calls from the browser: websites that ask for recommendations, post
outcomes and events, or open the alert stream from their own pages.

Only the origins configured in ``MOMENTS_API_CORS_ORIGINS`` get CORS headers; with none
configured (the default) nothing is installed and browsers keep to the same origin.
Browsers send the API key in the ``Authorization`` header, so a key used from a web page
is visible to its visitors: give such pages a key of their own, with the ``recommend``
(and perhaps ``ingest``) scope only.

>>> policy = CorsPolicy(frozenset({"https://shop.example"}))
>>> policy.allowed("https://shop.example"), policy.allowed("https://evil.example")
('https://shop.example', None)
>>> policy.preflight("https://shop.example", ["GET"])["Access-Control-Allow-Methods"]
'GET, OPTIONS'
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import hdrs, web

from streams.api.errors import ApiError, Handler
from streams.api.quoting import printable

ALLOWED_HEADERS = "Authorization, X-API-Key, Content-Type, Content-Encoding, Last-Event-ID"
EXPOSED_HEADERS = "Retry-After"


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    origins: frozenset[str]
    max_age_s: int = 600  # how long a browser may reuse a preflight answer

    def allowed(self, origin: str | None) -> str | None:
        """What to answer in ``Access-Control-Allow-Origin``, or ``None`` for no CORS."""
        if origin is None:
            return None
        if "*" in self.origins:
            return "*"
        return origin if origin in self.origins else None

    def headers(self, origin: str) -> dict[str, str]:
        """For an actual request from an allowed ``origin``."""
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Expose-Headers": EXPOSED_HEADERS,
            "Vary": "Origin",
        }

    def preflight(self, origin: str, methods: list[str]) -> dict[str, str]:
        """For a preflight from an allowed ``origin`` to a path that takes ``methods``."""
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": ", ".join([*methods, "OPTIONS"]),
            "Access-Control-Allow-Headers": ALLOWED_HEADERS,
            "Access-Control-Max-Age": str(self.max_age_s),
            "Vary": "Origin",
        }


def install(app: web.Application, policy: CorsPolicy) -> None:
    """Answer preflights, and add the CORS headers to every response (errors and the
    alert stream included) for requests from an allowed origin."""

    @web.middleware
    async def preflights(request: web.Request, handler: Handler) -> web.StreamResponse:
        wanted = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_METHOD)
        if request.method != hdrs.METH_OPTIONS or wanted is None:
            return await handler(request)
        origin = policy.allowed(request.headers.get(hdrs.ORIGIN))
        if origin is None:
            raise ApiError(403, "origin_not_allowed", "this origin may not call the API "
                           "from a browser (MOMENTS_API_CORS_ORIGINS)")  # fmt: skip
        methods = await _methods(request)
        if not methods:
            raise ApiError(404, "not_found", "no such path (see /openapi.json)")
        if wanted.upper() not in methods:
            allowed = ", ".join(methods)
            raise ApiError(405, "method_not_allowed",
                           f"{printable(wanted)} is not allowed; only {allowed}")  # fmt: skip
        return web.Response(status=204, headers=policy.preflight(origin, methods))

    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        origin = policy.allowed(request.headers.get(hdrs.ORIGIN))
        if origin is not None and hdrs.ACCESS_CONTROL_ALLOW_ORIGIN not in response.headers:
            response.headers.update(policy.headers(origin))

    app.middlewares.append(preflights)  # inside json_errors, which answers its errors
    app.on_response_prepare.append(add_headers)


async def _methods(request: web.Request) -> list[str]:
    """The methods the request's path takes (none for an unknown path)."""
    found = []
    for method in (hdrs.METH_GET, hdrs.METH_POST, hdrs.METH_DELETE):
        match = await request.app.router.resolve(request.clone(method=method))
        if match.http_exception is None:
            found.append(method)
    return found
