"""The Celery profile for real, minus Docker: the whole training DAG (the real
``anomalyops_train`` from ``dags/``) under a scheduler with the CeleryExecutor, Redis as the
broker, Airflow's metadata, Celery's results and ML Metadata on PostgreSQL, and two
``airflow celery worker`` processes, all started through the containers' entrypoint
(``docker/entrypoints/airflow.sh``) on loopback. Proves the run succeeds, every TFX node's task
succeeded, and tasks ran on both workers (``TaskInstance.hostname``: each worker names itself
through ``AIRFLOW__CORE__HOSTNAME_CALLABLE``, as two containers would by their host names).

The workers preload TensorFlow/TFX (the ``anomalyops_preload`` plugin in ``airflow celery
worker``), as the scheduler does under LocalExecutor, so forked tasks skip the import.

Skips where ``redis-server`` or PostgreSQL's server binaries are missing (``.ci/run`` installs
both)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.airflow_cluster import (
    HOSTNAME_VAR,
    create_database,
    free_port,
    start,
    stop,
    write_validated_days,
)
from tests.helpers.common import REPO_ROOT
from tests.helpers.lake_data import days

pytestmark = pytest.mark.timeout(1200)

AIRFLOW_SH = REPO_ROOT / "docker" / "entrypoints" / "airflow.sh"
DAG_ID = "anomalyops_train"
WORKERS = ("celery-worker-1", "celery-worker-2")
DAYS = days(dt.date(2026, 11, 1), 2)
RUN_TIMEOUT = 900
PRELOAD = os.environ.get("ANOMALYOPS_TEST_CELERY_PRELOAD", "1") == "1"
"""Measured on 2 shared cores: trigger to success 103-147 s (two runs) with the workers' TensorFlow preload,
496 s without (every task importing TensorFlow itself, 35-60 s a task). ``0`` turns it off."""


def cluster_env(tmp_path: Path, postgres_url: str, redis_url: str) -> dict[str, str]:
    """What docker-compose.yml's ``celery`` profile sets, pointed at loopback and temp dirs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "ANOMALYOPS_"))}
    bindir = str(Path(sys.executable).parent)
    pg = postgres_url.split("://", 1)[1]
    env.update(
        {
            "PATH": f"{bindir}{os.pathsep}{env.get('PATH', '')}",
            # The hostname callable below lives in this repository's tests package.
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])),
            "HOME": str(tmp_path),
            "AIRFLOW_HOME": str(tmp_path / "airflow"),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{pg}/airflow_celery",
            "AIRFLOW__CELERY__BROKER_URL": redis_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://{pg}/airflow_celery",
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.helpers.airflow_cluster.hostname",
            "AIRFLOW__CORE__PARALLELISM": "4",
            # Only the training DAG runs (the ingest DAG would catch up from its start date).
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
            "ANOMALYOPS_LAKE_ROOT": str(tmp_path / "lake"),
            "ANOMALYOPS_PIPELINE_ROOT": str(tmp_path / "tfx"),
            "ANOMALYOPS_SERVING_MODEL_DIR": str(tmp_path / "serving" / "anomaly_detector"),
            "ANOMALYOPS_TRAINING__METADATA_DB_URL": f"postgresql://{pg}/mlmd_celery",
            "ANOMALYOPS_TRAINING__WINDOW_DAYS": str(len(DAYS)),
            "ANOMALYOPS_TRAINING__EPOCHS": "2",
            "ANOMALYOPS_TRAINING__MIN_EVAL_ROWS": "20",
            "ANOMALYOPS_ORCHESTRATION__RETRIES": "0",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "PYTHONWARNINGS": "ignore",
        }
    )
    return env


def tfx_task_ids(pipeline_root: Path) -> set[str]:
    from anomalyops_airflow.dag_builder import ir_nodes, load_ir_json

    (ir_json,) = (
        p
        for p in (pipeline_root / "compiled").glob("*.json")
        if not p.name.endswith(".fingerprint.json")
    )
    return {node.task_id for node in ir_nodes(load_ir_json(ir_json))}


def tail(path: Path, n: int = 3000) -> str:
    return f"--- {path.name}\n" + path.read_text(errors="replace")[-n:] if path.exists() else ""


def celery_executor_import_error() -> str | None:
    """Why the locked environment cannot import the CeleryExecutor's task module, or None."""
    probe = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", CELERY_PROBE],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return None if probe.returncode == 0 else probe.stderr.strip().splitlines()[-1]


CELERY_PROBE = """
import importlib.metadata as md
try:
    import airflow.providers.celery.executors.celery_executor_utils
except ImportError as exc:
    raise SystemExit(
        f"celery {md.version('celery')} with apache-airflow-providers-celery "
        f"{md.version('apache-airflow-providers-celery')}: {exc}"
    )
"""


def test_the_locked_celery_works_with_the_celery_provider():
    """Every Celery worker and the scheduler's CeleryExecutor import this module first (celery
    5.7 dropped ``celery.backends.database.retry``, which provider 3.13.1 imports)."""
    error = celery_executor_import_error()
    assert error is None, f"{error}; fix: celery<5.7 in pyproject.toml, then `uv lock`"


def test_the_training_dag_runs_on_two_celery_workers(postgres_url, redis_url, tmp_path):
    t0 = time.perf_counter()
    error = celery_executor_import_error()
    if error:
        pytest.fail(f"the CeleryExecutor cannot start: {error}")
    create_database(postgres_url, "airflow_celery")
    create_database(postgres_url, "mlmd_celery")
    env = cluster_env(tmp_path, postgres_url, redis_url)
    logs = tmp_path / "logs"
    logs.mkdir()
    procs: list[subprocess.Popen] = []
    timings: dict[str, float] = {}
    try:
        # Set-up in parallel: Airflow's schema, the compiled pipeline (imports TFX), the lake.
        migrate = start(["bash", str(AIRFLOW_SH), "db", "migrate"], env, logs / "migrate.log")
        compile_ = start(["anomalyops", "compile-pipeline"], env, logs / "compile.log")
        procs += [migrate, compile_]
        write_validated_days(tmp_path / "lake", DAYS, rows=288)
        assert migrate.wait(300) == 0, tail(logs / "migrate.log")
        timings["migrated"] = time.perf_counter() - t0
        # The workers parse the DAG per task; they may start before the IR exists.
        for i, name in enumerate(WORKERS, 1):
            wenv = {
                **env,
                HOSTNAME_VAR: name,
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            }
            if PRELOAD:
                # Each worker imports TensorFlow/TFX once; its prefork pool, and every task the
                # pool forks, inherit them (plugins/anomalyops_preload.py).
                wenv["AIRFLOW__CORE__LAZY_LOAD_PLUGINS"] = "False"
                wenv["ANOMALYOPS_ORCHESTRATION__PRELOAD_TENSORFLOW"] = "true"
            cmd = ["bash", str(AIRFLOW_SH), "celery", "worker"]
            cmd += ["--celery-hostname", f"{name}@%h", "--concurrency", "1"]
            procs.append(start(cmd, wenv, logs / f"worker{i}.log"))
        assert compile_.wait(300) == 0, tail(logs / "compile.log")
        timings["compiled"] = time.perf_counter() - t0
        expected = tfx_task_ids(tmp_path / "tfx")
        procs.append(start(["bash", str(AIRFLOW_SH), "scheduler"], env, logs / "scheduler.log"))
        servers = [str(p.pid) for p in procs[2:]]
        driver = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.helpers.airflow_cluster",
                DAG_ID,
                "celery_test",
                str(RUN_TIMEOUT),
                *servers,
            ],
            env=env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT + 120,
        )
        timings["done"] = time.perf_counter() - t0
        every_log = "\n".join(tail(p) for p in sorted(logs.iterdir()))
        assert driver.returncode == 0, driver.stderr[-3000:] + every_log
        result = json.loads(driver.stdout.strip().splitlines()[-1])
        tasks = result["tasks"]
        report = {
            t: (v["state"], v["hostname"], round(v["duration"] or 0, 1)) for t, v in tasks.items()
        }
        print(f"timings {timings}; run {result['wall']:.1f} s; tasks {report}")

        assert result["state"] == "success", f"{report}\n{every_log}"
        assert expected <= set(tasks), f"TFX nodes without a task: {expected - set(tasks)}"
        assert {t for t in expected if tasks[t]["state"] != "success"} == set(), report
        by_worker = {w: sorted(t for t, v in tasks.items() if v["hostname"] == w) for w in WORKERS}
        assert all(by_worker.values()), f"a worker ran nothing: {by_worker}"
        assert {v["hostname"] for v in tasks.values()} <= set(WORKERS), report
        if PRELOAD:
            for i in range(1, len(WORKERS) + 1):
                text = (logs / f"worker{i}.log").read_text(errors="replace")
                assert "preloaded TensorFlow/TFX in `airflow celery worker`" in text
    finally:
        stop(procs)
