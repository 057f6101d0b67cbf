"""DAG integrity: every DAG file imports cleanly, fast, and follows the project's rules."""

import subprocess
import sys

import pytest

from anomalyops_airflow import compat
from tests.helpers.common import REPO_ROOT

DAG_FILES = sorted((REPO_ROOT / "dags").glob("*.py"))


@pytest.fixture(scope="module")
def dagbag():
    from anomalyops_airflow.compat import dag_bag

    return dag_bag(REPO_ROOT / "dags")


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert dagbag.dag_ids, "no DAGs found"


def test_every_dag_has_tags_retries_docs_and_owner(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md and len(dag.doc_md) > 100, f"{dag_id} has no doc_md"
        for task in dag.tasks:
            assert task.retries >= 1, f"{dag_id}.{task.task_id} has no retries"
            assert task.owner != "airflow", f"{dag_id}.{task.task_id} has no owner"
            assert task.on_failure_callback, f"{dag_id}.{task.task_id} would fail without an alert"


def test_ingest_dag_shape(dagbag):
    dag = dagbag.dags["anomalyops_ingest"]
    assert dag.catchup is True
    # Data intervals: each run's `ds` is the finished day before it starts (Airflow 3's default
    # for a cron string would make it the day the run starts).
    assert dag.timetable == compat.daily()
    assert dag.task_dict["land"].downstream_task_ids >= {"ingest"}


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_parses_without_heavy_imports(dag_file):
    """Parsing must not import TensorFlow, TFX, Beam, GX or TFDV (each costs seconds to tens of
    seconds, paid again on every re-parse). Parse *time* is a figure for
    bench/bench_orchestration.py, not an assertion: it varies with machine load."""
    probe = (
        "import sys, runpy, airflow;"
        f"runpy.run_path({str(dag_file)!r});"
        "heavy = [m for m in ('tensorflow', 'tfx', 'apache_beam', 'ml_metadata', 'great_expectations',"
        " 'tensorflow_data_validation') if m in sys.modules];"
        "print(','.join(heavy) or '-')"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    heavy = out.stdout.strip().splitlines()[-1]
    assert heavy == "-", f"{dag_file.name} imports {heavy} at parse time"
