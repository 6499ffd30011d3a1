"""The worker's web port serves Moments' pages and nothing of Faust's: a JSON 404 for any
other path, which neither quotes it nor logs it (Faust's ``/router/<name>/`` answered an
unknown name 500 and logged it at ERROR with a traceback)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from streams.app import create_app
from streams.settings import Settings
from streams.worker_pages import NOT_A_PAGE, PAGES

MARKER = "PII-MARKER-7781-unit"


@pytest.mark.parametrize("faust_env", [{}, {"APP_WEB_ROUTER_ENABLED": "1",
                                            "APP_WEB_TABLES_ENABLED": "1",
                                            "APP_WEB_STATS_ENABLED": "1"}])  # fmt: skip
async def test_only_moments_pages_are_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    faust_env: dict[str, str],
) -> None:  # fmt: skip
    for name, value in faust_env.items():  # Faust's own variables win over its settings
        monkeypatch.setenv(name, value)
    moments = create_app(Settings.from_env({"MOMENTS_DATA_DIR": str(tmp_path)}))
    moments.app.web.init_server()
    served = {r.resource.canonical for r in moments.app.web.web_app.router.routes()}
    assert served >= PAGES  # as streams.app registers them
    async with TestClient(TestServer(moments.app.web.web_app)) as client:
        with caplog.at_level(logging.DEBUG):
            for path in (f"/router/{MARKER}/", f"/table/{MARKER}/", f"/router/{MARKER}",
                         "/router/", "/", "/assignment/", "/graph/", "/performance/",
                         f"/metrics/{MARKER}", f"/{MARKER}"):  # fmt: skip
                reply = await client.get(path)
                assert reply.status == 404, path
                assert await reply.json() == {"error": "not_found", "message": NOT_A_PAGE}
            refused = await client.post("/healthz", data=MARKER)
            assert refused.status == 405 and refused.headers["Allow"] == "GET,HEAD"
            assert (await refused.json())["error"] == "method_not_allowed"
            alive = await client.get("/healthz")
            assert alive.status == 200 and await alive.json() == {"status": "ok"}
            assert (await client.head("/healthz")).status == 200
            scraped = await client.get("/metrics")
            assert scraped.status == 200 and "moments_" in await scraped.text()
    # (the test server's access log aside: Faust runs the worker's without one)
    logged = [r for r in caplog.records if r.name != "aiohttp.access"]
    assert [r.getMessage() for r in logged if r.levelno >= logging.ERROR] == []
    assert not any(MARKER in logging.Formatter().format(r) for r in logged)
