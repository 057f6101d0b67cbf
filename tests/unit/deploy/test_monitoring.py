"""The "monitoring" compose profile, checked without a Docker engine: Prometheus, the
OpenTelemetry Collector and Grafana exist only in that profile; what Prometheus scrapes is a
service and port of the stack; the files they mount are the repo's and parse; Airflow sends
OpenTelemetry to the collector only when asked; and every series the Grafana dashboard
queries is one the API exposes or Airflow (with anomalyops_airflow.metrics) emits."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.helpers.compose import (
    REPO_ROOT,
    env_example,
    in_profile,
    interpolate_tree,
    is_bind,
    load_raw,
    service_env,
    volume_mounts,
)

MONITORING = {"prometheus", "otel-collector", "grafana"}
AIRFLOW_SERVICES = [
    "airflow-init",
    "airflow-scheduler",
    "airflow-webserver",
    "airflow-triggerer",
    "airflow-worker",
    "flower",
]
MONITORING_DIR = REPO_ROOT / "docker" / "monitoring"
GRAFANA_DIR = MONITORING_DIR / "grafana"


@pytest.fixture(scope="module")
def raw() -> dict:
    return load_raw()


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def prometheus_config() -> dict:
    return _yaml(MONITORING_DIR / "prometheus.yml")


@pytest.fixture(scope="module")
def collector_config() -> dict:
    return _yaml(MONITORING_DIR / "otel-collector.yml")


@pytest.fixture(scope="module")
def dashboards() -> dict[str, dict]:
    files = sorted((GRAFANA_DIR / "dashboards").glob("*.json"))
    assert files, "no dashboard JSON"
    return {f.name: json.loads(f.read_text()) for f in files}


def test_the_monitoring_services_are_only_in_the_monitoring_profile(raw):
    services = raw["services"]
    profiled = {n for n, s in services.items() if "monitoring" in (s.get("profiles") or [])}
    assert profiled == MONITORING
    for name in MONITORING:
        assert services[name]["profiles"] == ["monitoring"], name
    # Nothing in the default stack waits for them (it must start without the profile).
    for name, service in services.items():
        if not in_profile(service):
            assert not set(service.get("depends_on") or {}) & MONITORING, name


def test_monitoring_images_are_pinned_by_tag(raw):
    for name in MONITORING:
        image = raw["services"][name]["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{name}: {image} is not pinned"


def test_mounted_monitoring_files_exist_and_are_read_only(raw):
    mounted = set()
    for name in MONITORING:
        for source, target, read_only in volume_mounts(raw["services"][name]):
            if not is_bind(source):
                continue
            assert (REPO_ROOT / source).exists(), f"{name}: {source} is missing"
            assert read_only, f"{name}: {source} should be mounted read-only"
            mounted.add((name, source.removeprefix("./"), target))
    assert mounted == {
        ("prometheus", "docker/monitoring/prometheus.yml", "/etc/prometheus/prometheus.yml"),
        (
            "otel-collector",
            "docker/monitoring/otel-collector.yml",
            "/etc/otelcol-contrib/config.yaml",
        ),
        ("grafana", "docker/monitoring/grafana/provisioning", "/etc/grafana/provisioning"),
        ("grafana", "docker/monitoring/grafana/dashboards", "/etc/grafana/dashboards"),
    }
    assert (
        "--config.file=/etc/prometheus/prometheus.yml" in raw["services"]["prometheus"]["command"]
    )
    assert (
        "--config=/etc/otelcol-contrib/config.yaml" in raw["services"]["otel-collector"]["command"]
    )
    # Nothing left of the StatsD route this profile replaced.
    assert not (MONITORING_DIR / "statsd-mapping.yml").exists()
    assert "statsd" not in (REPO_ROOT / "docker-compose.yml").read_text().lower()


def test_every_monitoring_config_file_parses():
    files = [p for p in MONITORING_DIR.rglob("*") if p.is_file()]
    assert {p.suffix for p in files} <= {".yml", ".json"}, files
    for path in files:
        data = json.loads(path.read_text()) if path.suffix == ".json" else _yaml(path)
        assert isinstance(data, dict) and data, path


def _targets(config: dict) -> dict[str, list[str]]:
    return {
        job["job_name"]: [t for sc in job.get("static_configs", []) for t in sc["targets"]]
        for job in config["scrape_configs"]
    }


def _port(endpoint: str) -> str:
    return endpoint.rpartition(":")[2]


def test_prometheus_scrapes_the_api_and_the_collector(raw, prometheus_config, collector_config):
    services = raw["services"]
    targets = _targets(prometheus_config)
    jobs = {job["job_name"]: job for job in prometheus_config["scrape_configs"]}
    assert jobs["anomalyops-api"].get("metrics_path", "/metrics") == "/metrics"
    # The API listens on UVICORN_PORT in its container (docker/entrypoints/api.sh).
    api_port = service_env(services["api"])["UVICORN_PORT"]
    assert targets["anomalyops-api"] == [f"api:{api_port}"]
    exporter = collector_config["exporters"]["prometheus"]["endpoint"]
    assert targets["airflow"] == [f"otel-collector:{_port(exporter)}"]
    for job, hosts in targets.items():
        for target in hosts:
            host, _, port = target.rpartition(":")
            assert port.isdigit(), f"{job}: {target}"
            assert host == "localhost" or host in services, f"{job}: {host} is not a service"
            if host in MONITORING:
                assert services[host]["healthcheck"]["test"], host


def test_api_metrics_path_is_the_apis_route():
    from anomalyops_api.routes import health

    assert "/metrics" in {route.path for route in health.router.routes}


def test_the_collector_turns_otlp_into_prometheus(collector_config):
    pipeline = collector_config["service"]["pipelines"]["metrics"]
    assert pipeline["receivers"] == ["otlp"]
    assert pipeline["exporters"] == ["prometheus"]
    for kind in ("receivers", "processors", "exporters"):
        for name in pipeline.get(kind, []):
            assert name in collector_config[kind], f"{kind}: {name} is used but not configured"
    http = collector_config["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    # The collector's default (localhost) would refuse the Airflow containers.
    assert http.startswith("0.0.0.0:")
    # Airflow sends deltas; without this the counters of short-lived task processes are lost.
    assert "deltatocumulative" in pipeline["processors"]


def test_airflow_sends_opentelemetry_to_the_collector_but_only_when_asked(raw, collector_config):
    services = raw["services"]
    receiver_port = _port(collector_config["receivers"]["otlp"]["protocols"]["http"]["endpoint"])
    for name in AIRFLOW_SERVICES:
        env = service_env(services[name])
        assert env["AIRFLOW__METRICS__OTEL_ON"] == "${ANOMALYOPS_AIRFLOW_METRICS:-False}", name
        assert env["AIRFLOW__METRICS__OTEL_HOST"] == "otel-collector", name
        assert env["AIRFLOW__METRICS__OTEL_PORT"] == receiver_port, name
        assert env["OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"] == "delta", name
        assert "AIRFLOW__METRICS__STATSD_ON" not in env, name
    # Off with .env.example's values: a stack without the profile logs no export errors.
    value = service_env(services["airflow-scheduler"])["AIRFLOW__METRICS__OTEL_ON"]
    assert interpolate_tree(value, env_example()) == "False"
    assert interpolate_tree(value, {"ANOMALYOPS_AIRFLOW_METRICS": "True"}) == "True"


def test_the_prefix_airflow_sends_is_the_one_the_dashboard_names_assume(raw):
    from anomalyops_airflow.metrics import STATS_PREFIX

    env = service_env(raw["services"]["airflow-scheduler"])
    assert env["AIRFLOW__METRICS__OTEL_PREFIX"] == STATS_PREFIX


def test_the_locked_opentelemetry_can_export_what_airflow_builds(monkeypatch):
    """Airflow's OTel logger builds an OTLP/HTTP exporter from the locked packages (api/sdk
    1.45, exporter 1.15), which must honour the delta preference compose sets: if an upgrade
    breaks that mix, this fails before the stack does."""
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import Counter
    from opentelemetry.sdk.metrics.export import AggregationTemporality

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta")
    exporter = OTLPMetricExporter(endpoint="http://127.0.0.1:9/v1/metrics")
    assert exporter._preferred_temporality[Counter] == AggregationTemporality.DELTA


# -- Grafana ---------------------------------------------------------------------------------


def test_grafana_provisions_prometheus_and_the_dashboards_folder(raw):
    sources = _yaml(GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml")
    [source] = sources["datasources"]
    host, _, port = source["url"].removeprefix("http://").partition(":")
    assert host == "prometheus" and port == "9090"
    assert source["uid"] == "prometheus" and source["type"] == "prometheus"
    providers = _yaml(GRAFANA_DIR / "provisioning" / "dashboards" / "anomalyops.yml")
    [provider] = providers["providers"]
    dashboards_mount = {
        target
        for source, target, _ in volume_mounts(raw["services"]["grafana"])
        if source.endswith("grafana/dashboards")
    }
    assert dashboards_mount == {provider["options"]["path"]}


def test_grafanas_admin_password_is_a_required_secret(raw):
    env = service_env(raw["services"]["grafana"])
    password = env["GF_SECURITY_ADMIN_PASSWORD"]
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}", password), password
    assert env_example()["GRAFANA_ADMIN_PASSWORD"] == ""
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    for port in raw["services"]["grafana"]["ports"]:
        assert str(port).startswith("127.0.0.1:"), f"grafana: {port} ignores BIND_ADDRESS"


def _panels(dashboard: dict) -> list[dict]:
    out = []
    for panel in dashboard.get("panels", []):
        out.append(panel)
        out.extend(panel.get("panels", []))  # collapsed rows keep theirs inside
    return out


def test_dashboard_panels_are_well_formed(dashboards):
    for name, dashboard in dashboards.items():
        assert dashboard["uid"] and dashboard["title"], name
        panels = [p for p in _panels(dashboard) if p["type"] != "row"]
        assert panels, name
        ids = [p["id"] for p in _panels(dashboard)]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        for panel in panels:
            assert panel["datasource"]["uid"] == "prometheus", panel["title"]
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                assert target["expr"].strip(), panel["title"]
                assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]


PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "and",
    "or",
    "unless",
    "inf",
    "nan",
}


def promql_metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects (functions, labels and keywords left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings (label values)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges ([5m], [$__rate_interval])
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for m in re.finditer(r"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", text):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in PROMQL_WORDS:
            continue
        names.add(word)
    return names


def test_the_promql_name_reader_finds_names_and_only_names():
    expr = (
        'histogram_quantile(0.95, sum by (le, route) (rate(a_bucket{job="x", route=~"/v1.*"}'
        "[$__rate_interval]))) / ignoring (le) b_total offset 5m > bool 0"
    )
    assert promql_metric_names(expr) == {"a_bucket", "b_total"}


def _api_exposed_names() -> set[str]:
    """Every sample name the API's /metrics can carry, read from the page itself."""
    import tempfile

    from fastapi.testclient import TestClient

    from anomalyops_api.main import create_app
    from anomalyops_api.settings import ApiSettings

    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(ApiSettings(model_dir=Path(tmp) / "serving", state_dir=Path(tmp) / "s"))
        with TestClient(app) as client:
            text = client.get("/metrics").text
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("", "_count", "_sum", "_created"),
        "info": ("_info",),
        "gauge": ("",),
        "untyped": ("",),
    }
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE):
        # The text format types a counter under its _total name.
        base = name.removesuffix("_total") if kind == "counter" else name
        names.update(base + suffix for suffix in suffixes[kind])
    return names


def _airflow_names() -> set[str]:
    from anomalyops_airflow.metrics import AIRFLOW_METRICS, PROJECT_METRICS

    return {m.prometheus_name for m in PROJECT_METRICS + AIRFLOW_METRICS}


def test_every_series_the_dashboard_queries_is_exposed_or_emitted(dashboards):
    api = _api_exposed_names()
    assert "anomalyops_api_push_to_served_seconds_bucket" in api  # the page was read
    assert "process_resident_memory_bytes" in api
    known = api | _airflow_names()
    used: dict[str, set[str]] = {}
    for name, dashboard in dashboards.items():
        for panel in _panels(dashboard):
            for target in panel.get("targets", []):
                for metric in promql_metric_names(target["expr"]):
                    used.setdefault(metric, set()).add(f"{name}: {panel['title']}")
    unknown = {metric: sorted(where) for metric, where in used.items() if metric not in known}
    assert unknown == {}
    # The dashboard covers what issue 12.6 asks for.
    for needed in (
        "anomalyops_api_served_alarms_total",
        "anomalyops_api_model_calibrated_alarm_rate",
        "anomalyops_api_rows_scored_total",
        "anomalyops_api_request_duration_seconds_bucket",
        "anomalyops_api_model_push_to_served_seconds",
        "airflow_anomalyops_gate_decisions_total",
        "airflow_anomalyops_gate_drift_max_ratio",
        "airflow_dagrun_duration_success",
        "airflow_ti_finish_total",
    ):
        assert needed in used, f"no panel shows {needed}"


def test_an_unknown_dashboard_series_is_caught(dashboards):
    known = _airflow_names()
    assert "airflow_anomalyops_gate_decision_total" not in known  # a typo'd name
    assert "airflow_anomalyops_gate_decisions_total" in known


def test_monitoring_ports_are_loopback_only_and_the_collector_not_published(raw):
    services = raw["services"]
    for name in ("prometheus", "grafana"):
        for port in services[name]["ports"]:
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port} ignores BIND_ADDRESS"
    assert not services["otel-collector"].get("ports")
    text = (REPO_ROOT / "docker-compose.yml").read_text()
    for name in ("prometheus", "grafana"):
        block = text.split(f"\n  {name}:\n", 1)[1].split("\n\n", 1)[0]
        assert "loopback only" in block, f"{name}: say why it is pinned to loopback"
