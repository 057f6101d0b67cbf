"""The containers' entrypoint scripts, run directly on this machine with their environment
pointed at temporary directories: what `docker compose up` would run, minus Docker."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.helpers.compose import REPO_ROOT

ENTRYPOINTS = REPO_ROOT / "docker" / "entrypoints"
ADMIN_KEY = "admin-key-for-the-entrypoint-test"
SCORING_KEY = "scoring-key-for-the-entrypoint-test"


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without Airflow/project settings, with the venv on PATH."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW", "ANOMALYOPS_", "UVICORN_"))
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def run(script: str, *args: str, env: dict[str, str], timeout: float = 600):
    return subprocess.run(
        ["bash", str(ENTRYPOINTS / script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=env.get("HOME", "/"),
    )


# -- airflow.sh ------------------------------------------------------------------------------
def test_airflow_sh_runs_airflow_with_the_project_configuration(tmp_path):
    env = clean_env(AIRFLOW_HOME=str(tmp_path / "airflow"))
    result = run("airflow.sh", "config", "get-value", "core", "dags_folder", env=env)
    assert result.returncode == 0, result.stderr
    # The value is the last line: Airflow 3 prints a provider warning on stdout before it.
    assert result.stdout.strip().splitlines()[-1] == str(REPO_ROOT / "dags")

    env["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(tmp_path / "plugins")  # the environment wins
    result = run("airflow.sh", "config", "get-value", "core", "plugins_folder", env=env)
    assert result.stdout.strip().splitlines()[-1] == str(tmp_path / "plugins"), result.stderr


def test_airflow_sh_refuses_a_celery_worker_without_the_celery_executor(tmp_path):
    env = clean_env(
        AIRFLOW_HOME=str(tmp_path),
        AIRFLOW__CORE__EXECUTOR="LocalExecutor",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="postgresql+psycopg2://u:p@127.0.0.1:1/airflow",
    )
    result = run("airflow.sh", "celery", "worker", env=env, timeout=120)
    assert result.returncode == 2
    assert "AIRFLOW_EXECUTOR=CeleryExecutor" in result.stderr
    assert "COMPOSE_PROFILES=celery" in result.stderr


def test_airflow_sh_refuses_a_parallel_executor_on_sqlite(tmp_path):
    from anomalyops_airflow.compat import AIRFLOW_3

    # Airflow 3's LocalExecutor runs on SQLite (there is no SequentialExecutor); Celery never does.
    parallel = "CeleryExecutor" if AIRFLOW_3 else "LocalExecutor"
    env = clean_env(AIRFLOW_HOME=str(tmp_path), AIRFLOW__CORE__EXECUTOR=parallel)
    result = run("airflow.sh", "scheduler", env=env, timeout=120)
    assert result.returncode == 2
    assert "cannot use a SQLite metadata database" in result.stderr
    assert ("use LocalExecutor" if AIRFLOW_3 else "use SequentialExecutor") in result.stderr


# -- airflow-init.sh -------------------------------------------------------------------------
@pytest.mark.timeout(900)
def test_airflow_init_prepares_a_fresh_deployment_and_is_safe_to_rerun(tmp_path):
    env = clean_env(
        HOME=str(tmp_path),
        AIRFLOW_HOME=str(tmp_path / "airflow"),
        AIRFLOW_ADMIN_USERNAME="admin",
        AIRFLOW_ADMIN_PASSWORD="init-test-password",
        ANOMALYOPS_LAKE_ROOT=str(tmp_path / "lake"),
        ANOMALYOPS_PIPELINE_ROOT=str(tmp_path / "tfx"),
        ANOMALYOPS_SERVING_MODEL_DIR=str(tmp_path / "serving"),
    )
    first = run("airflow-init.sh", env=env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "creating admin user 'admin'" in first.stdout

    users = run("airflow.sh", "users", "list", "--output", "json", env=env, timeout=120)
    assert [u["username"] for u in json.loads(users.stdout)] == ["admin"]
    assert json.loads(users.stdout)[0]["roles"] == ["Admin"]
    check = subprocess.run(
        ["anomalyops", "compile-pipeline", "--check"], env=env, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr

    again = run("airflow-init.sh", env=env)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "admin user 'admin' exists" in again.stdout


def test_airflow_init_needs_the_admin_password(tmp_path):
    env = clean_env(AIRFLOW_HOME=str(tmp_path))
    result = run("airflow-init.sh", env=env, timeout=120)
    assert result.returncode != 0
    assert "AIRFLOW_ADMIN_PASSWORD" in result.stderr


# -- api.sh + healthcheck.py ------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, *, method: str = "GET", headers: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def healthcheck(env: dict[str, str], *args: str) -> int:
    return subprocess.run(
        [sys.executable, str(ENTRYPOINTS / "healthcheck.py"), *args], env=env, timeout=30
    ).returncode


@pytest.fixture
def api_env(tmp_path) -> dict[str, str]:
    """The API container's environment (docker-compose.yml), on loopback and tmp dirs."""
    return clean_env(
        ANOMALYOPS_API_ENVIRONMENT="production",
        ANOMALYOPS_API_KEYS=SCORING_KEY,
        ANOMALYOPS_API_ADMIN_KEY=ADMIN_KEY,
        ANOMALYOPS_API_MODEL_DIR=str(tmp_path / "serving" / "anomaly_detector"),
        ANOMALYOPS_API_STATE_DIR=str(tmp_path / "api"),
        ANOMALYOPS_API_POLL_INTERVAL_S="0.5",
        UVICORN_HOST="127.0.0.1",
        UVICORN_PORT=str(free_port()),
        TF_CPP_MIN_LOG_LEVEL="2",
    )


@pytest.mark.timeout(600)
def test_api_sh_serves_health_and_picks_up_a_pushed_model(api_env, tmp_path):
    base = f"http://127.0.0.1:{api_env['UVICORN_PORT']}"
    assert healthcheck(api_env) == 1, "nothing listens yet: the healthcheck must fail"
    log = (tmp_path / "api.log").open("w")
    proc = subprocess.Popen(
        ["bash", str(ENTRYPOINTS / "api.sh")], env=api_env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 180
        while healthcheck(api_env) != 0:
            assert proc.poll() is None, (tmp_path / "api.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "API did not answer /healthz in 180 s"
            time.sleep(1)
        assert get(f"{base}/healthz")[0] == 200
        assert get(f"{base}/readyz")[0] == 503  # no model pushed yet

        # What the Pusher does to the shared serving volume; the API's watcher loads it (the
        # first load imports TensorFlow), then the pipeline's notifier asks for a reload with
        # the shared admin key and is told which version is served.
        model_dir = api_env["ANOMALYOPS_API_MODEL_DIR"]
        subprocess.run(
            [sys.executable, "-m", "anomalyops_api.demo_model", model_dir, "--version", "7"],
            env=api_env,
            check=True,
            capture_output=True,
            timeout=300,
        )
        deadline = time.monotonic() + 240
        while get(f"{base}/readyz")[0] != 200:
            assert time.monotonic() < deadline, "the pushed model was not loaded in 240 s"
            time.sleep(1)
        assert get(f"{base}/readyz")[1]["model_version"] == 7
        assert get(f"{base}/admin/reload", method="POST")[0] == 401
        status, body = get(f"{base}/admin/reload", method="POST", headers={"X-API-Key": ADMIN_KEY})
        assert (status, body["model_version"]) == (200, 7), body
        assert healthcheck(api_env, f"{base}/readyz") == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        log.close()
    # Graceful: uvicorn finishes shutdown, then re-raises the SIGTERM it caught.
    assert code in (0, -signal.SIGTERM), (tmp_path / "api.log").read_text()[-3000:]
    assert "Application shutdown complete" in (tmp_path / "api.log").read_text()


def test_api_sh_refuses_production_without_keys(api_env, tmp_path):
    del api_env["ANOMALYOPS_API_KEYS"]
    result = subprocess.run(
        ["bash", str(ENTRYPOINTS / "api.sh")],
        env=api_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "ANOMALYOPS_API_KEYS must be set in production" in result.stdout + result.stderr


@pytest.mark.timeout(600)
def test_airflow_sh_migrates_a_postgresql_metadata_db_for_local_executor(postgres_url, tmp_path):
    """The compose stack's Airflow configuration (LocalExecutor, psycopg2 URL) minus Docker."""
    db = "airflow_entrypoint_test"
    subprocess.run(
        [
            sys.executable,
            "-c",
            f"import psycopg2; c = psycopg2.connect('{postgres_url}/postgres');"
            f"c.autocommit = True; c.cursor().execute('CREATE DATABASE {db}')",
        ],
        check=True,
        timeout=60,
    )
    env = clean_env(
        HOME=str(tmp_path),
        AIRFLOW_HOME=str(tmp_path / "airflow"),
        AIRFLOW__CORE__EXECUTOR="LocalExecutor",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgres_url.replace(
            "postgresql://", "postgresql+psycopg2://"
        )
        + f"/{db}",
    )
    migrated = run("airflow.sh", "db", "migrate", env=env)
    assert migrated.returncode == 0, migrated.stdout[-2000:] + migrated.stderr[-2000:]
    check = run("airflow.sh", "db", "check", env=env, timeout=120)
    assert check.returncode == 0, check.stderr[-2000:]
    executor = run("airflow.sh", "config", "get-value", "core", "executor", env=env, timeout=120)
    assert executor.stdout.strip() == "LocalExecutor"
