"""The probe port (``MOMENTS_API_PROBE_PORT``): ``/healthz``, ``/readyz`` and ``/metrics``
served again on a second listener, which the client connections' cap
(:mod:`streams.api.connection_cap`) does not count.

At its cap the API answers every new client connection 503 as it opens. An orchestrator's
liveness probe or a Prometheus scrape on that listener then fails although the process is
only full, and the pod is restarted (its alert streams ended, its load moved to the other
replicas, which fill in turn) or reported down. Here they are answered whatever the
client listener holds. Only GET and HEAD of those three paths: anything else is a JSON 404,
so that the port gives nothing a client could use instead of the capped one. Its own
connections are few and capped apart (:data:`PROBE_CONNECTIONS`), so that they cannot take
the descriptors the client connections are counted against.
"""

from __future__ import annotations

from aiohttp import web

from streams.api import views
from streams.api.errors import Handler, error_response, json_errors
from streams.api.protocol_errors import JsonErrorsAppRunner, expect_continue
from streams.api.server import API_KEY, Api
from streams.settings import Settings

# a few probes (kubelet opens one connection per probe) and scrapers (one each, kept alive)
PROBE_CONNECTIONS = 32
# kept alive past Prometheus's usual 15 s interval, so a scraper keeps its connection
PROBE_IDLE_TIMEOUT_S = 20.0
PROBE_STOP_S = 2.0
PROBES: dict[str, Handler] = {
    "/healthz": views.healthz,
    "/readyz": views.readyz,
    "/metrics": views.metrics,
}
NOT_A_PROBE = "the probe port answers GET or HEAD of /healthz, /readyz and /metrics only"


async def probe(request: web.Request) -> web.StreamResponse:
    """The probe ``request`` names, as the client listener answers it; anything else 404."""
    view = PROBES.get(request.path) if request.method in ("GET", "HEAD") else None
    if view is None:  # the path is not quoted: it may hold a customer id
        return error_response(404, "not_found", NOT_A_PROBE)
    return await view(request)


def probe_app(api: Api) -> web.Application:
    """The probe port's application, answering from the client listener's ``api``."""
    app = web.Application(middlewares=[json_errors], client_max_size=1024)
    app[API_KEY] = api
    app.router.add_route("*", "/{anything:.*}", probe, expect_handler=expect_continue)
    return app


def probe_runner(api: Api, head_timeout_s: float) -> JsonErrorsAppRunner:
    """A runner for :func:`probe_app`, :data:`PROBE_CONNECTIONS` at most at once (counted
    apart from the client listener's), each head due within ``head_timeout_s``."""
    return JsonErrorsAppRunner(
        probe_app(api), access_log=None, stop_within_s=PROBE_STOP_S,
        keepalive_timeout=PROBE_IDLE_TIMEOUT_S, max_connections=PROBE_CONNECTIONS,
        head_timeout_s=head_timeout_s,
    )  # fmt: skip


async def serve_probes(runner: JsonErrorsAppRunner, host: str, port: int) -> web.TCPSite:
    """Start ``runner`` listening on ``host:port`` (``runner.cleanup()`` stops it)."""
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return site


def probes_at(settings: Settings) -> str:
    """Where the start-up line says the probes are served apart, if they are.

    >>> probes_at(Settings(api_probe_port=6068))
    'probes and metrics also on port 6068, apart from that cap'
    >>> probes_at(Settings(api_probe_port=0))
    'no probe port (MOMENTS_API_PROBE_PORT=0)'
    """
    if not settings.api_probe_port:
        return "no probe port (MOMENTS_API_PROBE_PORT=0)"
    return f"probes and metrics also on port {settings.api_probe_port}, apart from that cap"
