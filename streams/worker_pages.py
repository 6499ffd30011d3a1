"""The worker's web port (``MOMENTS_WEB_PORT``): Moments' own pages, and nothing of Faust's.

Faust mounts pages of its own on the port that serves ``/metrics``, ``/healthz`` and
``/readyz``, with no key: ``/router/<table>/`` answered a name it did not know with a 500,
and logged it at ERROR with a traceback ending ``KeyError: '<the name>'``, so that anyone
reaching the port could write any text (a customer id) into the worker's log and set off
alerts on errors. Moments has no Faust tables and needs none of those pages: their
settings are off (:data:`FAUST_PAGES_OFF`), and anything but :data:`PAGES` (Faust's index
at ``/``, which no setting removes, included) is a JSON 404 shaped as the API's errors,
which does not quote the path (:func:`moments_pages_only`).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from streams.api.errors import Handler, error_response

PAGES = frozenset({"/metrics", "/healthz", "/readyz"})  # as streams.app registers them
NOT_A_PAGE = "the worker serves /metrics, /healthz and /readyz only"

# faust.App settings: its built-in blueprints (/router, /table, the statistics at / and
# /assignment, /graph, /performance), not installed
FAUST_PAGES_OFF = {
    "web_router_enabled": False,
    "web_tables_enabled": False,
    "web_stats_enabled": False,
    "web_graph_enabled": False,
    "web_metrics_enabled": False,
}


@web.middleware
async def moments_pages_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    """``request`` answered if it asks for one of :data:`PAGES`; else a JSON 404 (405 for
    a method the page does not take) that does not quote it: it may hold a customer id."""
    if request.path not in PAGES:
        return error_response(404, "not_found", NOT_A_PAGE)
    try:
        return await handler(request)
    except web.HTTPMethodNotAllowed as exc:
        allowed = exc.headers.get("Allow", "")
        return error_response(405, "method_not_allowed", f"this page takes {allowed} only",
                              headers={"Allow": allowed})  # fmt: skip


def web_options() -> dict[str, Any]:
    """The keywords of ``faust.App`` that keep its web port to Moments' pages."""
    return {**FAUST_PAGES_OFF, "web_application_options": {"middlewares": [moments_pages_only]}}
