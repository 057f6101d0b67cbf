"""docker-compose.yml checked without a Docker engine: the Compose Specification's JSON schema,
then everything the schema cannot know (files, volumes, variables, health, profiles, and that
the environment the containers get is accepted by the settings that read it)."""

from __future__ import annotations

import importlib
import json
import re
import warnings
from pathlib import Path

import pytest
from jsonschema import Draft7Validator

from tests.helpers.compose import (
    IMAGE_APP_ROOT,
    REPO_ROOT,
    command_words,
    env_example,
    generated_env,
    in_profile,
    interpolate_tree,
    is_bind,
    load_raw,
    load_schema,
    service_env,
    strings,
    var_refs,
    volume_mounts,
)

AIRFLOW_SERVICES = [
    "airflow-init",
    "airflow-scheduler",
    "airflow-webserver",
    "airflow-triggerer",
    "airflow-worker",
    "flower",
]
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|(^|_)KEYS?$")
URL_PASSWORD = re.compile(r"://[^:/@\s]+:(?P<password>[^@\s]+)@")


@pytest.fixture(scope="module")
def raw() -> dict:
    return load_raw()


@pytest.fixture(scope="module")
def dotenv(tmp_path_factory) -> dict[str, str]:
    return generated_env(tmp_path_factory.mktemp("dotenv"))


@pytest.fixture(scope="module")
def compose(raw, dotenv) -> dict:
    """The file as Compose sees it with the .env that docker/init-env.sh writes."""
    return interpolate_tree(raw, dotenv)


def _errors(instance: dict) -> list[str]:
    validator = Draft7Validator(load_schema())
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(instance)
    ]


def test_the_compose_file_matches_the_compose_specification_schema(raw, compose):
    assert _errors(raw) == []
    assert _errors(compose) == []


def test_the_schema_check_rejects_a_broken_file(raw):
    broken = json.loads(json.dumps(raw))
    broken["services"]["api"]["healthcheck"]["intervall"] = "15s"
    broken["services"]["postgres"]["depends_on"] = {"mailpit": {"condition": "when_ready"}}
    assert len(_errors(broken)) >= 2


def test_the_stack_has_the_services_the_issue_asks_for(raw):
    services = raw["services"]
    default = {name for name, s in services.items() if not in_profile(s)}
    assert default == {
        "postgres",
        "airflow-init",
        "airflow-scheduler",
        "airflow-webserver",
        "airflow-triggerer",
        "api",
        "mailpit",
    }
    celery = {name for name, s in services.items() if "celery" in (s.get("profiles") or [])}
    assert celery == {"redis", "airflow-worker", "flower"}


def test_every_variable_has_a_default_or_is_in_env_example(raw):
    example = env_example()
    missing = {
        ref.name
        for text in strings(raw)
        for ref in var_refs(text)
        if not ref.has_default and ref.name not in example
    }
    assert missing == set()


def test_every_required_variable_is_a_secret_left_empty_in_env_example(raw):
    example = env_example()
    required = {ref.name for text in strings(raw) for ref in var_refs(text) if ref.required}
    assert required, "secrets must be required (${VAR:?...}), not defaulted"
    for name in required:
        assert SECRET_NAME.search(name), f"{name} is required but does not look like a secret"
        assert example.get(name) == "", f".env.example must leave {name} empty"


def test_no_secret_has_a_literal_or_default_value(raw):
    for name, service in raw["services"].items():
        for key, value in service_env(service).items():
            if SECRET_NAME.search(key):
                refs = var_refs(value)
                assert refs, f"{name}: {key} is a literal; it must come from .env"
                assert not any(r.has_default for r in refs), f"{name}: {key} has a default"
            url = URL_PASSWORD.search(value)
            if url:
                refs = var_refs(url["password"])
                assert refs and not any(r.has_default for r in refs), f"{name}: {key}"
    example = env_example()
    for key, value in example.items():
        if SECRET_NAME.search(key):
            assert value == "", f".env.example commits a value for {key}"


def test_the_generated_env_fills_every_required_secret(raw, dotenv):
    from cryptography.fernet import Fernet

    example = env_example()
    assert set(dotenv) == set(example)
    required = {ref.name for text in strings(raw) for ref in var_refs(text) if ref.required}
    for key in required:
        assert len(dotenv[key]) >= 32, key
        assert re.fullmatch(r"[A-Za-z0-9_=-]+", dotenv[key]), f"{key} is not URL-safe"
    Fernet(dotenv["AIRFLOW_FERNET_KEY"].encode())  # raises if Airflow could not use it
    assert len({dotenv[k] for k in required}) == len(required), "every secret must be distinct"
    # Optional secrets (a real SMTP server's login) stay the user's to fill.
    assert dotenv["SMTP_PASSWORD"] == ""


def test_build_contexts_and_dockerfiles_exist(raw):
    built = {}
    for name, service in raw["services"].items():
        build = service.get("build")
        if build is None:
            continue
        context = REPO_ROOT / (build if isinstance(build, str) else build.get("context", "."))
        assert context.is_dir(), f"{name}: build context {context} is missing"
        dockerfile = context / (
            "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        )
        assert dockerfile.is_file(), f"{name}: {dockerfile} is missing"
        built[name] = dockerfile.relative_to(REPO_ROOT).as_posix()
    assert {built[s] for s in AIRFLOW_SERVICES} == {"docker/airflow/Dockerfile"}
    assert built["api"] == "docker/api/Dockerfile"
    assert raw["services"]["api"]["image"] != raw["services"]["airflow-scheduler"]["image"]


def test_bind_mounts_exist_and_named_volumes_are_declared(raw):
    declared = set(raw.get("volumes") or {})
    used = set()
    for name, service in raw["services"].items():
        for source, target, _ in volume_mounts(service):
            assert target.startswith("/"), f"{name}: {target}"
            if is_bind(source):
                assert (REPO_ROOT / source).exists(), f"{name}: bind source {source} is missing"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"
                used.add(source)
    assert used == declared, f"declared but unused volumes: {declared - used}"
    assert {"lake", "tfx", "serving", "airflow-logs"} <= declared


def test_read_only_volumes_are_created_by_a_writer_first(raw):
    """A fresh named volume takes the ownership of whoever mounts it first: a read-only reader
    must start after a service that mounts it read-write (and so owns it)."""
    services = raw["services"]
    for name, service in services.items():
        for source, _, read_only in volume_mounts(service):
            if not read_only or is_bind(source):
                continue
            writers = {
                dep
                for dep in (service.get("depends_on") or {})
                if any(s == source and not ro for s, _, ro in volume_mounts(services[dep]))
            }
            assert writers, f"{name} mounts {source} read-only before any writer created it"


def test_depends_on_targets_exist_and_are_healthy_or_one_shot(raw):
    services = raw["services"]
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        if isinstance(depends, list):
            depends = {d: {"condition": "service_started"} for d in depends}
        for target, spec in depends.items():
            assert target in services, f"{name} depends on unknown {target}"
            if in_profile(services[target]):
                assert set(services[target]["profiles"]) & set(service.get("profiles") or []), (
                    f"{name} would not start without profile of {target}"
                )
            condition = spec.get("condition")
            if condition == "service_healthy":
                assert services[target].get("healthcheck"), f"{target} has no healthcheck"
            elif condition == "service_completed_successfully":
                assert services[target].get("restart") == "no", f"{target} must run once"
            else:
                pytest.fail(f"{name} -> {target}: wait for health or completion, not {condition}")


def test_every_long_running_service_has_a_healthcheck(raw):
    for name, service in raw["services"].items():
        if service.get("restart") == "no":
            continue
        test = (service.get("healthcheck") or {}).get("test")
        assert test and not (service["healthcheck"].get("disable")), f"{name} has no healthcheck"


def test_airflow_services_wait_for_postgres_and_the_init_job(raw):
    services = raw["services"]
    for name in AIRFLOW_SERVICES:
        if name == "airflow-init":
            assert services[name]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
            continue
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["airflow-init"]["condition"] == "service_completed_successfully", name


def test_scripts_the_containers_run_are_the_repos_and_in_the_image(raw):
    airflow_copies = _copied_dirs(REPO_ROOT / "docker" / "airflow" / "Dockerfile")
    api_copies = _copied_dirs(REPO_ROOT / "docker" / "api" / "Dockerfile")
    seen = set()
    for name, service in raw["services"].items():
        copies = api_copies if name == "api" else airflow_copies
        for word in command_words(service):
            path = word.strip("\"'")
            if not path.startswith(IMAGE_APP_ROOT + "/"):
                continue
            rel = path[len(IMAGE_APP_ROOT) + 1 :]
            local = REPO_ROOT / rel
            assert local.is_file(), f"{name} runs {path}, but {rel} is not in the repo"
            if local.suffix == ".sh":
                assert local.stat().st_mode & 0o111, f"{rel} is not executable"
            assert any(rel == c or rel.startswith(c.rstrip("/") + "/") for c in copies), (
                f"{name} runs {rel}, which its Dockerfile does not COPY"
            )
            seen.add(rel)
    assert {"docker/entrypoints/airflow-init.sh", "docker/entrypoints/healthcheck.py"} <= seen


def _copied_dirs(dockerfile: Path) -> list[str]:
    copied = []
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            copied += [w for w in words[1:-1] if not w.startswith("--")]
            if words[-1].endswith("/") and len(words) > 2 and not words[-2].startswith("--"):
                copied += [words[-1] + Path(w).name for w in words[1:-1] if not w.startswith("--")]
    return copied


def test_commands_the_init_script_runs_exist_in_the_cli():
    from anomalyops_cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    scripts = (REPO_ROOT / "docker" / "entrypoints").glob("*.sh")
    used = {m for s in scripts for m in re.findall(r"\banomalyops ([a-z][a-z-]+)", s.read_text())}
    assert {"airflow-env", "compile-pipeline"} <= used
    assert used <= set(sub.choices), f"missing CLI commands: {used - set(sub.choices)}"


def test_airflow_environment_names_real_airflow_options(compose):
    from airflow.configuration import conf
    from airflow.providers_manager import ProvidersManager

    provider_options = {
        (section, option)
        for cfg in ProvidersManager().provider_configs
        for section, body in cfg[1].items()
        for option in body["options"]
    }
    for name in AIRFLOW_SERVICES:
        for key in service_env(compose["services"][name]):
            if not key.startswith("AIRFLOW__"):
                continue
            section, option = key[len("AIRFLOW__") :].lower().split("__", 1)
            assert (section, option) in provider_options or conf.has_option(section, option), (
                f"{name}: {key} is not an Airflow option"
            )
    backends = service_env(compose["services"]["airflow-webserver"])["AIRFLOW__API__AUTH_BACKENDS"]
    for module in backends.split(","):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a deprecated module path would go in Airflow 3
            importlib.import_module(module.strip())


def _field_path_exists(model, names: list[str]) -> bool:
    field = model.model_fields.get(names[0])
    if field is None:
        return False
    if len(names) == 1:
        return True
    nested = field.annotation
    return hasattr(nested, "model_fields") and _field_path_exists(nested, names[1:])


def test_every_project_variable_names_a_real_setting(compose):
    """pydantic-settings ignores unknown variables, so a misspelt one would silently do nothing."""
    from anomalyops.settings import Settings
    from anomalyops_api.settings import ApiSettings

    for name, service in compose["services"].items():
        for key in service_env(service):
            if name == "api" and key.startswith("ANOMALYOPS_API_"):
                field = key[len("ANOMALYOPS_API_") :].lower()
                assert field in ApiSettings.model_fields, f"api: {key} is not an ApiSettings field"
            elif key.startswith("ANOMALYOPS_"):
                path = key[len("ANOMALYOPS_") :].lower().split("__")
                assert _field_path_exists(Settings, path), f"{name}: {key} is not a setting"


def test_pipeline_environment_is_accepted_by_settings(compose, monkeypatch):
    """Each Airflow container's ANOMALYOPS_* environment builds a valid production Settings."""
    from anomalyops.settings import DEFAULT_BEAM_ARGS, Settings
    from anomalyops_airflow import ir
    from anomalyops_airflow.env import smtp_airflow_env

    compiled_from = set()
    for name in AIRFLOW_SERVICES:
        settings = _build(Settings, service_env(compose["services"][name]), monkeypatch)
        assert settings.environment == "production"
        assert settings.beam_args == DEFAULT_BEAM_ARGS, "compose's default drifted from settings"
        assert settings.smtp.host in compose["services"], "alerts must go to a stack service"
        # What the entrypoint exports for Airflow: the smtp_default connection alerts use.
        smtp = json.loads(smtp_airflow_env(settings.smtp)["AIRFLOW_CONN_SMTP_DEFAULT"])
        assert (smtp["host"], smtp["port"]) == ("mailpit", 1025)
        assert "login" not in smtp and "password" not in smtp, "Mailpit takes no credentials"
        assert settings.api_url == "http://api:8000"
        db = settings.training.metadata_db_url.get_secret_value()
        assert db.startswith("postgresql://") and "@postgres:5432/" in db
        # airflow-init compiles the IR; the others must see the same fingerprint inputs or the
        # training DAG would call it stale.
        compiled_from.add(json.dumps(ir.pipeline_settings_values(settings), sort_keys=True))
    assert len(compiled_from) == 1


def test_project_files_the_services_read_are_in_their_image(compose, monkeypatch):
    """Path settings left at their defaults point into the checkout: the image must have them."""
    from anomalyops.settings import PROJECT_ROOT, Settings
    from anomalyops_api.settings import ApiSettings

    images = {
        "airflow-scheduler": (Settings, REPO_ROOT / "docker" / "airflow" / "Dockerfile"),
        "api": (ApiSettings, REPO_ROOT / "docker" / "api" / "Dockerfile"),
    }
    checked = set()
    for name, (cls, dockerfile) in images.items():
        settings = _build(cls, service_env(compose["services"][name]), monkeypatch)
        copies = _copied_dirs(dockerfile)
        for value in strings(settings.model_dump(mode="json")):
            path = Path(value)
            if not path.is_absolute() or not path.is_relative_to(PROJECT_ROOT):
                continue
            rel = path.relative_to(PROJECT_ROOT).as_posix()
            assert any(f"{rel}/".startswith(c.rstrip("/") + "/") for c in copies), (
                f"{name} reads {rel} (a default under the checkout) but {dockerfile.name} does "
                "not COPY it; COPY it or set the path on a volume in docker-compose.yml"
            )
            assert path.exists(), f"{name} reads {rel}, which is not in the repo"
            checked.add(rel)
    assert "config/feature_spec.yaml" in checked


def test_api_environment_is_accepted_by_api_settings(compose, monkeypatch):
    from anomalyops_api.settings import ApiSettings

    api = _build(ApiSettings, service_env(compose["services"]["api"]), monkeypatch)
    assert api.environment == "production"
    assert api.keys and api.admin_key is not None


def test_pipeline_and_api_share_the_serving_dir_and_the_admin_key(raw, compose):
    services = compose["services"]
    api_env = service_env(services["api"])
    raw_api_env = service_env(raw["services"]["api"])
    serving = api_env["ANOMALYOPS_API_MODEL_DIR"]
    for name in AIRFLOW_SERVICES:
        env = service_env(services[name])
        assert env["ANOMALYOPS_SERVING_MODEL_DIR"] == serving, name
        assert (
            service_env(raw["services"][name])["ANOMALYOPS_API_ADMIN_KEY"]
            == raw_api_env["ANOMALYOPS_API_ADMIN_KEY"]
        ), name
        # Only where the Pusher can run (and the init job that creates the volume) writes.
        writes = name in ("airflow-init", "airflow-scheduler", "airflow-worker")
        assert _volume_of(services[name], serving) == ("serving", not writes), name
    assert _volume_of(services["api"], serving) == ("serving", True), "the API only reads models"


def test_every_data_path_the_services_use_is_on_a_volume(compose):
    services = compose["services"]
    path_vars = {
        **{name: ["ANOMALYOPS_LAKE_ROOT", "ANOMALYOPS_PIPELINE_ROOT"] for name in AIRFLOW_SERVICES},
        "api": ["ANOMALYOPS_API_MODEL_DIR", "ANOMALYOPS_API_STATE_DIR"],
    }
    for name, keys in path_vars.items():
        env = service_env(services[name])
        for key in keys:
            assert _volume_of(services[name], env[key]), f"{name}: {key}={env[key]} is lost on exit"
    # The Airflow services see the same data (some of it read-only).
    mounts = {
        name: sorted(m[:2] for m in volume_mounts(services[name])) for name in AIRFLOW_SERVICES
    }
    assert len({tuple(m) for m in mounts.values()}) == 1


def test_task_logs_land_on_the_logs_volume(compose, monkeypatch):
    """airflow-env puts task logs in $AIRFLOW_HOME/logs: that must be the shared volume."""
    import os

    from anomalyops_airflow.env import airflow_env

    for key in list(os.environ):
        if key.startswith("AIRFLOW"):
            monkeypatch.delenv(key)
    text = (REPO_ROOT / "docker" / "airflow" / "Dockerfile").read_text()
    home = re.search(r"AIRFLOW_HOME=(\S+)", text).group(1)
    logs = airflow_env(Path(home))["AIRFLOW__LOGGING__BASE_LOG_FOLDER"]
    for name in AIRFLOW_SERVICES:
        assert service_env(compose["services"][name]).get("AIRFLOW__LOGGING__BASE_LOG_FOLDER") in (
            None,
            logs,
        )
        assert _volume_of(compose["services"][name], logs) == ("airflow-logs", False), name


def test_the_celery_profile_switches_the_executor_by_one_variable(raw, compose):
    services = compose["services"]
    for name in AIRFLOW_SERVICES:
        assert service_env(raw["services"][name])["AIRFLOW__CORE__EXECUTOR"] == (
            "${AIRFLOW_EXECUTOR:-LocalExecutor}"
        )
        env = service_env(services[name])
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:")
    assert env_example()["AIRFLOW_EXECUTOR"] == "LocalExecutor"
    assert services["airflow-worker"]["command"] == ["celery", "worker"]
    # Tasks fork from the scheduler (LocalExecutor) or a Celery worker's pool: TensorFlow/TFX
    # are imported there once; the services that run no task do not pay for it.
    for name in ("airflow-scheduler", "airflow-worker"):
        env = service_env(services[name])
        assert env["AIRFLOW__CORE__LAZY_LOAD_PLUGINS"] == "False", name
        assert env["ANOMALYOPS_ORCHESTRATION__PRELOAD_TENSORFLOW"] == "True", name
    assert (REPO_ROOT / "plugins" / "anomalyops_preload.py").is_file()
    for name in ("airflow-webserver", "airflow-triggerer", "airflow-init"):
        assert "ANOMALYOPS_ORCHESTRATION__PRELOAD_TENSORFLOW" not in service_env(services[name])


def test_published_ports_bind_to_loopback_by_default(raw):
    published = {}
    for name, service in raw["services"].items():
        for port in service.get("ports") or []:
            host, _, container = str(port).rpartition(":")
            # UIs without a login ignore BIND_ADDRESS (test_production_defaults.py).
            loopback_only = name in ("mailpit", "flower", "prometheus", "grafana")
            bind = "127.0.0.1:" if loopback_only else "${BIND_ADDRESS:-127.0.0.1}:"
            assert host.startswith(bind), f"{name}: {port}"
            published[name] = container
    assert published == {
        "airflow-webserver": "8080",
        "api": "8000",
        "mailpit": "8025",
        "flower": "5555",
        "prometheus": "9090",
        "grafana": "3000",
    }


def _build(cls, env: dict[str, str], monkeypatch):
    import os

    for key in list(os.environ):
        if key.startswith("ANOMALYOPS_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return cls()


def _volume_of(service: dict, path: str) -> tuple[str, bool] | None:
    for source, target, read_only in volume_mounts(service):
        if path == target or path.startswith(target.rstrip("/") + "/"):
            return source, read_only
    return None
