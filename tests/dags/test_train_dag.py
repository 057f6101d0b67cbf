"""The training DAG: its shape from a compiled IR, its schedule, and its parse cost."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers.common import REPO_ROOT

DAG_FILE = REPO_ROOT / "dags" / "anomalyops_train.py"
IR_FIXTURE = REPO_ROOT / "tests" / "unit" / "orchestration" / "fixtures" / "toy_ir.json"


@pytest.fixture
def compiled(settings_env):
    """A fresh compiled pipeline (the toy IR's JSON) for the current settings."""
    from anomalyops_airflow import ir

    settings = settings_env()
    target = ir.compiled_pipeline(settings)
    target.directory.mkdir(parents=True)
    target.json_path.write_text(IR_FIXTURE.read_text())
    target.pb_path.write_bytes(b"")
    target.fingerprint_path.write_text(
        json.dumps({"fingerprint": ir.project_fingerprint(settings), "schema_path": None})
    )
    assert ir.project_status(settings).fresh
    return target


def _load(airflow_db):
    from anomalyops_airflow.compat import dag_bag

    bag = dag_bag(DAG_FILE)
    assert bag.import_errors == {}
    return bag.dags["anomalyops_train"]


def test_shape_schedule_and_policies(airflow_db, compiled):
    from anomalyops_airflow.datasets import VALIDATED

    dag = _load(airflow_db)
    assert set(dag.task_ids) == {
        "check_compiled_pipeline",
        "register_window_spans",
        "MakeData",
        "Train",
        "Push",
    }
    assert dag.task_dict["check_compiled_pipeline"].downstream_task_ids == {"register_window_spans"}
    assert dag.task_dict["register_window_spans"].downstream_task_ids == {"MakeData"}
    assert dag.task_dict["Push"].upstream_task_ids == {"Train"}
    assert dag.task_dict["Train"].op_kwargs["ir_path"] == str(compiled.pb_path)
    # Airflow 3 renamed the Dataset condition the Asset condition.
    condition = getattr(dag.timetable, "asset_condition", None) or dag.timetable.dataset_condition
    assert list(condition.objects) == [VALIDATED]
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    assert dag.max_active_tasks == 1  # SQLite ML Metadata
    assert {"anomalyops", "training", "tfx"} <= set(dag.tags)
    for task in dag.tasks:
        assert task.retries >= 1 and task.retry_exponential_backoff
        assert task.owner == "anomalyops"
    assert "compile-pipeline" in dag.doc_md


def test_missing_compiled_pipeline_shows_in_the_dag(airflow_db, settings_env):
    settings_env()
    dag = _load(airflow_db)
    assert dag.task_ids == ["check_compiled_pipeline"]
    assert "anomalyops compile-pipeline" in dag.description


def test_parses_from_the_compiled_ir_without_heavy_imports(compiled):
    """Parsed the way the DAG processor sees it (Airflow's models already imported). How long
    it takes is a figure for bench/bench_orchestration.py, not an assertion: on two shared
    cores it swings with whatever else runs."""
    probe = (
        "import sys, time, runpy\n"
        "from anomalyops_airflow.compat import DAG, PythonOperator\n"
        "import anomalyops.settings\n"
        "t = time.perf_counter()\n"
        f"g = runpy.run_path({str(DAG_FILE)!r})\n"
        "dt = time.perf_counter() - t\n"
        "heavy = [m for m in ('tensorflow', 'tfx', 'apache_beam', 'ml_metadata', 'google.protobuf')"
        " if m in sys.modules]\n"
        "print(len(g['dag'].tasks), round(dt, 3), ','.join(heavy) or '-')\n"
    )
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ),
    )
    n_tasks, _seconds, heavy = out.stdout.split()[-3:]
    assert n_tasks == "5", "the probe did not see the compiled pipeline"
    assert heavy == "-", f"parsing imported {heavy}"
