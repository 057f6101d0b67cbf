"""The "monitoring" compose profile, checked without a Docker engine: Prometheus and the
StatsD exporter exist only in that profile, what Prometheus scrapes is a service and port of
the stack, the files they mount are the repo's, and Airflow's StatsD is off unless asked for
(the locked environment has no ``statsd`` package)."""

from __future__ import annotations

import importlib.util
import re

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

MONITORING = {"prometheus", "statsd-exporter"}
AIRFLOW_SERVICES = [
    "airflow-init",
    "airflow-scheduler",
    "airflow-webserver",
    "airflow-triggerer",
    "airflow-worker",
    "flower",
]


@pytest.fixture(scope="module")
def raw() -> dict:
    return load_raw()


@pytest.fixture(scope="module")
def prometheus_config() -> dict:
    return yaml.safe_load((REPO_ROOT / "docker" / "monitoring" / "prometheus.yml").read_text())


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
        assert repo and re.fullmatch(r"v\d+\.\d+\.\d+", tag), f"{name}: {image} is not pinned"


def test_mounted_monitoring_files_exist_and_are_read_only(raw):
    mounted = set()
    for name in MONITORING:
        for source, target, read_only in volume_mounts(raw["services"][name]):
            if not is_bind(source):
                continue
            assert (REPO_ROOT / source).is_file(), f"{name}: {source} is missing"
            assert read_only, f"{name}: {source} should be mounted read-only"
            mounted.add((name, source.removeprefix("./"), target))
    assert mounted == {
        ("prometheus", "docker/monitoring/prometheus.yml", "/etc/prometheus/prometheus.yml"),
        (
            "statsd-exporter",
            "docker/monitoring/statsd-mapping.yml",
            "/etc/statsd-exporter/mapping.yml",
        ),
    }
    command = raw["services"]["prometheus"]["command"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in command
    command = raw["services"]["statsd-exporter"]["command"]
    assert "--statsd.mapping-config=/etc/statsd-exporter/mapping.yml" in command


def _targets(config: dict) -> dict[str, list[str]]:
    return {
        job["job_name"]: [t for sc in job.get("static_configs", []) for t in sc["targets"]]
        for job in config["scrape_configs"]
    }


def _listen_port(command: list[str], flag: str) -> str:
    value = next(w.split("=", 1)[1] for w in command if w.startswith(flag + "="))
    return value.rpartition(":")[2]


def test_prometheus_scrapes_the_api_and_the_statsd_exporter(raw, prometheus_config):
    services = raw["services"]
    targets = _targets(prometheus_config)
    jobs = {job["job_name"]: job for job in prometheus_config["scrape_configs"]}
    assert jobs["anomalyops-api"].get("metrics_path", "/metrics") == "/metrics"
    # The API listens on UVICORN_PORT in its container (docker/entrypoints/api.sh).
    api_port = service_env(services["api"])["UVICORN_PORT"]
    assert targets["anomalyops-api"] == [f"api:{api_port}"]
    exporter_port = _listen_port(services["statsd-exporter"]["command"], "--web.listen-address")
    assert targets["airflow"] == [f"statsd-exporter:{exporter_port}"]
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


def test_airflow_sends_statsd_to_the_exporter_but_only_when_asked(raw):
    services = raw["services"]
    exporter = services["statsd-exporter"]["command"]
    udp_port = _listen_port(exporter, "--statsd.listen-udp")
    for name in AIRFLOW_SERVICES:
        env = service_env(services[name])
        assert env["AIRFLOW__METRICS__STATSD_ON"] == "${AIRFLOW_STATSD_ON:-False}", name
        assert env["AIRFLOW__METRICS__STATSD_HOST"] == "statsd-exporter", name
        assert env["AIRFLOW__METRICS__STATSD_PORT"] == udp_port, name
    # Off with .env.example's values: Airflow would need the `statsd` package to send.
    value = service_env(services["airflow-scheduler"])["AIRFLOW__METRICS__STATSD_ON"]
    assert interpolate_tree(value, env_example()) == "False"


def test_statsd_stays_off_while_the_environment_lacks_the_statsd_package():
    """If someone adds `statsd` to the lock, this fails: then update docs/operations.md
    (the profile can turn Airflow's StatsD on by default)."""
    assert importlib.util.find_spec("statsd") is None
    text = (REPO_ROOT / "docs" / "operations.md").read_text()
    assert "AIRFLOW_STATSD_ON" in text and "`statsd`" in text


def test_statsd_mapping_names_are_valid_prometheus_names():
    mapping = yaml.safe_load(
        (REPO_ROOT / "docker" / "monitoring" / "statsd-mapping.yml").read_text()
    )
    assert mapping["mappings"]
    for entry in mapping["mappings"]:
        assert entry["match"].startswith("airflow."), entry
        assert re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", entry["name"]), entry
        wildcards = entry["match"].count("*")
        for value in entry.get("labels", {}).values():
            assert int(value.lstrip("$")) <= wildcards, entry


def test_prometheus_is_published_on_loopback_only_and_the_exporter_not_at_all(raw):
    services = raw["services"]
    for port in services["prometheus"]["ports"]:
        assert str(port).startswith("127.0.0.1:"), f"prometheus: {port} ignores BIND_ADDRESS"
    assert not services["statsd-exporter"].get("ports")
    text = (REPO_ROOT / "docker-compose.yml").read_text()
    block = text.split("\n  prometheus:\n", 1)[1].split("\n\n", 1)[0]
    assert "loopback only" in block, "prometheus: say why it is pinned to loopback"
