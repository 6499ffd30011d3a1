"""Observability on real binaries: promtool checks deploy/prometheus/ and our /metrics output,
and a real Prometheus server (Debian's package) scrapes a running worker and API.

`make test` installs promtool and prometheus (deploy/local/install-deps.sh); when they are
missing these tests fail, they do not skip.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from streams.metrics import Metrics
from streams.services import free_port
from tests.integration.conftest import Pipeline, Worker
from tests.integration.test_touchpoints_pipeline import good_events, produce

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "moments.json"
GRAFANA_PROVISIONING = REPO / "deploy" / "grafana" / "provisioning"
METRIC_NAME = re.compile(r"\bmoments_[a-z0-9_]+\b")


def binary(name: str) -> str:
    """The path of a Prometheus binary; a failure (not a skip) when it is not installed."""
    found = shutil.which(name) or shutil.which(name, path="/usr/bin:/usr/local/bin")
    if found is None:
        pytest.fail(
            f"`{name}` is not installed: `make test` installs it (deploy/local/install-deps.sh "
            "installs Debian's `prometheus` package, which has prometheus and promtool)",
            pytrace=False,
        )
    return found


def run(
    *args: str, stdin: bytes | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, input=stdin.decode() if stdin is not None else None,
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def render_config(dest: Path, worker: str, api: str, prometheus: str, interval: str = "1s") -> Path:
    """deploy/prometheus/prometheus.yml with these targets, scraping and evaluating every
    ``interval``, and its rule file at its absolute path."""
    text = (PROMETHEUS_DIR / "prometheus.yml").read_text()
    for old, new in [
        ('"localhost:6066"', f'"{worker}"'),
        ('"localhost:6068"', f'"{api}"'),  # the API's probe port
        ('"localhost:9090"', f'"{prometheus}"'),
        ("scrape_interval: 15s", f"scrape_interval: {interval}"),
        ("evaluation_interval: 15s", f"evaluation_interval: {interval}"),
        ("scrape_timeout: 10s", f"scrape_timeout: {interval}"),
        ("- alerts.yml", f"- {PROMETHEUS_DIR / 'alerts.yml'}"),
    ]:
        assert old in text, f"prometheus.yml no longer has {old!r}; update render_config"
        text = text.replace(old, new)
    path = dest / "prometheus.yml"
    path.write_text(text)
    return path


def known_metric_names() -> set[str]:
    """Every sample name Moments can expose: families of streams.metrics and their suffixes."""
    names: set[str] = set()
    for line in Metrics().exposition().decode().splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            names.add(name)
            if kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    return names


def dashboard_panels() -> list[dict[str, Any]]:
    dashboard = json.loads(DASHBOARD.read_text())
    panels: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))  # collapsed rows keep theirs inside
    return [p for p in panels if p["type"] != "row"]


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in dashboard_panels() for t in p["targets"]]


# --- static checks --------------------------------------------------------------------------


# (the second evaluated every 5m); alone, about 20 and 10 s of CPU
@pytest.mark.parametrize("tests", ["alerts_test.yml", "alerts_test_days.yml"])
def test_the_alert_rules_pass_their_unit_tests(tests: str) -> None:
    """Bounded generously: on a loaded machine (a CI run's four test processes on two
    cores) the two together took more than the minute the other checks get."""
    unit = run(binary("promtool"), "test", "rules", str(PROMETHEUS_DIR / tests), timeout=300)
    assert unit.returncode == 0, unit.stdout + unit.stderr
    assert unit.stdout.count("SUCCESS") == 1, unit.stdout


def test_alert_rules_and_config_pass_promtool(tmp_path: Path) -> None:
    promtool = binary("promtool")
    rules = run(promtool, "check", "rules", str(PROMETHEUS_DIR / "alerts.yml"))
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "SUCCESS" in rules.stdout

    shipped = run(promtool, "check", "config", str(PROMETHEUS_DIR / "prometheus.yml"))
    assert shipped.returncode == 0, shipped.stdout + shipped.stderr
    rendered = render_config(tmp_path, "127.0.0.1:16066", "127.0.0.1:16067", "127.0.0.1:19090")
    checked = run(promtool, "check", "config", str(rendered))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "1 rule files found" in checked.stdout

    # The alerts name only metrics Moments has, and every group the issue asks for is there.
    text = (PROMETHEUS_DIR / "alerts.yml").read_text()
    assert set(METRIC_NAME.findall(text)) <= known_metric_names()
    for alert in [
        "MomentsConsumerLagGrowing", "MomentsEventToDecisionP99OverBudget",
        "MomentsDeadLetterRateHigh", "MomentsHttpErrorRateHigh", "MomentsEventErrorRateHigh",
        "MomentsModelLoglossRising", "MomentsModelRocAucFalling",
        "MomentsRecommendationFallbacksHigh", "MomentsWorkerDown",
    ]:  # fmt: skip
        assert f"alert: {alert}\n" in text, alert
    assert 'expr: up{job="moments-worker"} == 0' in text


def test_dashboard_panels_query_metrics_that_exist() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    panels = dashboard_panels()
    assert len({p["id"] for p in panels}) == len(panels), "panel ids repeat"
    known = known_metric_names()
    used: set[str] = set()
    for panel in panels:
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            expr = target["expr"].strip()
            assert expr, f"panel {panel['title']!r} has an empty expr"
            names = set(METRIC_NAME.findall(expr))
            assert names or re.search(r"\bup\{", expr), (panel["title"], expr)
            assert names <= known, (panel["title"], names - known)
            used |= names
    titles = " | ".join(p["title"] for p in panels).lower()
    for wanted in ["events by type", "event to decision", "lag", "decisions by kind",
                   "interventions", "acceptance", "lift", "log loss", "roc auc",
                   "by offer"]:  # fmt: skip
        assert wanted in titles, wanted
    lift = next(p for p in panels if p["title"].startswith("Lift"))
    assert "approximat" in lift["description"].lower()
    for family in ["moments_events_total", "moments_event_to_decision_seconds_bucket",
                   "moments_consumer_lag", "moments_decisions_total", "moments_outcomes_total",
                   "moments_model_logloss", "moments_model_rocauc", "moments_offers_made_total",
                   "moments_offer_outcomes_total"]:  # fmt: skip
        assert family in used, family

    # The provisioning files point Grafana at the dashboard folder and at Prometheus.
    datasource = (GRAFANA_PROVISIONING / "datasources" / "prometheus.yml").read_text()
    assert "type: prometheus" in datasource
    provider = (GRAFANA_PROVISIONING / "dashboards" / "moments.yml").read_text()
    assert "type: file" in provider and "path:" in provider


# --- a running worker and API ---------------------------------------------------------------


def fresh_events(n: int) -> list[dict[str, Any]]:
    """Contract events stamped now, so event-to-decision latencies are realistic."""
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return [{**event, "ts": now} for event in good_events(n, seed=23)]


def promtool_check_metrics(promtool: str, process: Worker, what: str) -> str:
    status, body = process.get("/metrics")
    assert status == 200, (what, status, body[:500])
    checked = run(promtool, "check", "metrics", stdin=body.encode())
    assert checked.returncode == 0, (
        f"promtool check metrics flags the {what}'s /metrics:\n{checked.stdout}{checked.stderr}"
    )
    return body


class PrometheusServer:
    def __init__(self, binary_path: str, port: int, config: Path, storage: Path, log: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    binary_path,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={storage}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=1h",
                    "--log.level=warn",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def get(self, path: str, **params: str) -> dict[str, Any]:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with urllib.request.urlopen(self.url + path + query, timeout=5) as resp:
                body: dict[str, Any] = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read())
        return body

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"prometheus not ready in {timeout}s:\n{self.log.read_text()[-3000:]}")

    def query(self, expr: str) -> list[dict[str, Any]]:
        body = self.get("/api/v1/query", query=expr)
        assert body["status"] == "success", (expr, body)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def prometheus_server(tmp_path: Path) -> Iterator[Callable[[Worker, Worker], PrometheusServer]]:
    """A factory: start Debian's prometheus on a free loopback port for given targets."""
    path = binary("prometheus")
    started: list[PrometheusServer] = []

    def start(worker: Worker, api: Worker) -> PrometheusServer:
        config_dir = tmp_path / "prometheus"
        config_dir.mkdir()
        # the port is chosen before the config so that the self-scrape job points at it
        server_port = free_port()
        config = render_config(
            config_dir, f"127.0.0.1:{worker.port}", f"127.0.0.1:{api.probe_port}",
            f"127.0.0.1:{server_port}",
        )  # fmt: skip
        server = PrometheusServer(
            path, server_port, config, tmp_path / "tsdb", tmp_path / "prometheus.log"
        )
        started.append(server)
        server.wait_ready()
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


def wait_for(server: PrometheusServer, expr: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    """The query's result once it is not empty."""
    deadline = time.monotonic() + timeout
    while True:
        result = server.query(expr)
        if result or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert result, (
        f"no series for {expr!r} after {timeout}s; log:\n{server.log.read_text()[-2000:]}"
    )
    return result


async def test_prometheus_scrapes_worker_and_api_and_promtool_accepts_metrics(
    pipeline: Pipeline, prometheus_server: Callable[[Worker, Worker], PrometheusServer]
) -> None:
    promtool = binary("promtool")
    binary("prometheus")
    worker = pipeline.start_worker()
    api = pipeline.start_api()
    events = fresh_events(200)
    await produce(
        pipeline.services.kafka_bootstrap,
        pipeline.topic("touchpoints"),
        [(e["customer_id"].encode(), json.dumps(e).encode()) for e in events]
        + [(b"bad-1", b"{not json")],
    )
    types = {e["type"] for e in events}
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        ok = sum(worker.metric("moments_events_total", type=t, result="ok") for t in types)
        if ok >= len(events) and worker.metric("moments_dead_letters_total") >= 1:
            break
        await asyncio.sleep(0.25)
    assert ok == len(events), f"worker handled {ok} of {len(events)} events"
    for path in ["/healthz", "/readyz", "/v1/customers/nobody/recommendations"]:
        api.get(path)  # requests of several routes and statuses for the HTTP histogram

    # (b) promtool accepts the exposition of both processes.
    worker_body = promtool_check_metrics(promtool, worker, "worker")
    api_body = promtool_check_metrics(promtool, api, "API")
    assert "moments_event_to_decision_seconds_bucket" in worker_body
    assert "moments_http_request_seconds_bucket" in api_body

    # (c) a real Prometheus scrapes both and answers queries on the key series.
    server = prometheus_server(worker, api)
    wait_for(server, 'up{job="moments-worker"} == 1')
    wait_for(server, 'up{job="moments-api"} == 1')
    by_type = wait_for(
        server, 'sum by (type) (moments_events_total{job="moments-worker",result="ok"})'
    )
    assert sum(float(s["value"][1]) for s in by_type) == len(events)
    assert {s["metric"]["type"] for s in by_type} == types
    buckets = wait_for(server, 'moments_event_to_decision_seconds_bucket{job="moments-worker"}')
    assert any(s["metric"]["le"] == "+Inf" and float(s["value"][1]) > 0 for s in buckets)
    wait_for(server, 'moments_decisions_total{job="moments-worker",kind="next_best_offer"}')
    wait_for(server, 'moments_dead_letters_total{job="moments-worker"} >= 1')
    wait_for(server, 'moments_consumer_lag{job="moments-worker"}')
    wait_for(server, 'moments_http_request_seconds_count{job="moments-api"}')
    wait_for(server, 'moments_model_version{job="moments-api"}')

    # Every dashboard query is valid PromQL on this server.
    for expr in dashboard_exprs():
        server.query(expr.replace("$__rate_interval", "1m"))

    # The server loaded alerts.yml and evaluates every rule without error.
    deadline = time.monotonic() + 20
    while True:
        groups = server.get("/api/v1/rules")["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        if (rules and all(r["health"] == "ok" for r in rules)) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert len(rules) == (PROMETHEUS_DIR / "alerts.yml").read_text().count("- alert: ")
    bad = [(r["name"], r["health"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not bad, bad
    firing = [a["labels"]["alertname"] for a in server.get("/api/v1/alerts")["data"]["alerts"]]
    assert "MomentsWorkerDown" not in firing and "MomentsApiDown" not in firing
