"""The real training DAG (``dags/anomalyops_train.py``) under ``dag.test()``, on tiny data.

One module, three DagRuns sharing a pipeline root, in order:

1. The Trainer fails once (injected into TFX's trainer executor); Airflow retries the task, the
   retry re-runs the same TFX execution, and the Pusher pushes the retried model.
2. The settings change (a learning rate that wrecks training): the run fails at
   ``check_compiled_pipeline`` until ``compile-pipeline`` runs; nothing else runs.
3. Recompiled, with two new validated days: the earlier one is registered as a span first; the
   evaluation gate compares the candidate with run 1's blessed model, does not bless the
   deliberately worse model, and nothing is pushed.

The TFX components' own behaviour is tested in tests/integration/tfx with LocalDagRunner; this
module is about the Airflow path: task wiring, run ids, retries, staleness, what reaches serving.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from anomalyops_airflow import compat
from tests.helpers.common import REPO_ROOT

pytestmark = pytest.mark.timeout(900)

ROWS_PER_DAY = 288
FIRST_DAY = dt.date(2026, 11, 1)


def _utc(day: int) -> dt.datetime:
    return dt.datetime(2026, 12, day, tzinfo=dt.timezone.utc)


class Env:
    def __init__(self, tmp: Path, monkeypatch: pytest.MonkeyPatch):
        self.tmp = tmp
        self.mp = monkeypatch
        self.days = 0
        for key, value in {
            "ANOMALYOPS_LAKE_ROOT": tmp / "lake",
            "ANOMALYOPS_PIPELINE_ROOT": tmp / "tfx",
            "ANOMALYOPS_SERVING_MODEL_DIR": tmp / "serving",
            "ANOMALYOPS_TRAINING__EPOCHS": 2,
            "ANOMALYOPS_TRAINING__WINDOW_DAYS": 3,
            "ANOMALYOPS_ORCHESTRATION__RETRY_DELAY_S": 1,
        }.items():
            monkeypatch.setenv(key, str(value))
        self.settings = self.reload()

    def reload(self):
        from anomalyops.settings import get_settings

        get_settings.cache_clear()
        self.settings = get_settings()
        return self.settings

    def add_validated_day(self) -> dt.date:
        from anomalyops.lake import Lake, Zone
        from anomalyops.sources.simulator import SimulatorConfig, simulate_day
        from anomalyops.spec import load_spec

        day = FIRST_DAY + dt.timedelta(days=self.days)
        self.days += 1
        spec = load_spec(self.settings.feature_spec_path)
        df = simulate_day(spec, day, SimulatorConfig(rows_per_day=ROWS_PER_DAY))
        Lake(self.settings.lake_root).write_table(Zone.VALIDATED, day, df)
        return day

    def dag(self):
        from anomalyops_airflow.compat import dag_bag

        bag = dag_bag(REPO_ROOT / "dags" / "anomalyops_train.py")
        assert bag.import_errors == {}
        return bag.dags["anomalyops_train"]

    def versions(self) -> set[str]:
        root = self.settings.serving_model_dir
        return {p.name for p in root.iterdir() if p.is_dir()} if root.exists() else set()

    def store(self):
        from ml_metadata import metadata_store

        from anomalyops_tfx.pipeline import metadata_connection_config

        return metadata_store.MetadataStore(metadata_connection_config(self.settings))


@pytest.fixture(scope="module")
def env(airflow_db, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    e = Env(tmp_path_factory.mktemp("train_dag"), mp)
    for _ in range(2):
        e.add_validated_day()
    from anomalyops_airflow import ir

    ir.compile_project_pipeline(e.settings)
    assert ir.project_status(e.settings).fresh
    yield e
    mp.undo()
    e.reload()


def _tis(dr) -> dict:
    return {ti.task_id: ti for ti in dr.get_task_instances()}


def _gate_report(tis) -> dict:
    blessing_dir = tis["EvaluationGate"].xcom_pull(task_ids="EvaluationGate")["outputs"][
        "blessing"
    ][0]
    return json.loads(Path(blessing_dir, "evaluation_report.json").read_text())


def _single_execution(store, run_id: str, node_id: str):
    context = store.get_context_by_type_and_name("pipeline_run", run_id)
    assert context is not None, f"no TFX pipeline run {run_id!r}: the run id did not carry over"
    node_type = f"anomalyops.{node_id}"
    found = []
    for execution in store.get_executions_by_context(context.id):
        node_ctx = [
            c
            for c in store.get_contexts_by_execution(execution.id)
            if c.name == node_type or c.name.endswith(f".{node_id}")
        ]
        if node_ctx:
            found.append(execution)
    assert len(found) == 1, f"{node_id}: expected one execution in {run_id}, got {len(found)}"
    return found[0]


def _artifact_ids(store, execution_id: int, *, inputs: bool) -> set[int]:
    from ml_metadata.proto import metadata_store_pb2

    kinds = (
        {metadata_store_pb2.Event.INPUT}
        if inputs
        else {metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT}
    )
    return {
        e.artifact_id for e in store.get_events_by_execution_ids([execution_id]) if e.type in kinds
    }


def test_run_1_retried_trainer_is_pushed(env, monkeypatch):
    from airflow.utils.state import DagRunState
    from ml_metadata.proto import metadata_store_pb2
    from tfx.components.trainer import executor as trainer_executor

    original = trainer_executor.GenericExecutor.Do
    attempts = []

    def fail_once(self, *args, **kwargs):
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("injected: the first Trainer attempt fails")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(trainer_executor.GenericExecutor, "Do", fail_once)
    dag = env.dag()
    assert dag.task_dict["Trainer"].retries >= 1
    dr = compat.dag_test(dag, _utc(1))

    assert dr.state == DagRunState.SUCCESS
    tis = _tis(dr)
    assert len(attempts) == 2
    assert tis["Trainer"].try_number == 2
    store = env.store()
    trainer = _single_execution(store, dr.run_id, "Trainer")
    assert trainer.last_known_state == metadata_store_pb2.Execution.COMPLETE
    pusher = _single_execution(store, dr.run_id, "Pusher")
    trained = _artifact_ids(store, trainer.id, inputs=False)
    assert _artifact_ids(store, pusher.id, inputs=True) & trained, (
        "Pusher did not get the retry's model"
    )
    assert len(env.versions()) == 1
    report = _gate_report(tis)
    assert report["blessed"] is True
    assert report["pipeline_run_id"] == dr.run_id
    env.run_1_model_uri = report["candidate_model_uri"]


@pytest.fixture
def run_1_model_uri(env):
    uri = getattr(env, "run_1_model_uri", None)
    if uri is None:
        pytest.skip("needs test_run_1 (run the module in order)")
    return uri


def test_run_2_stale_compiled_pipeline_fails_before_any_node(env):
    from airflow.utils.state import DagRunState, TaskInstanceState

    env.mp.setenv("ANOMALYOPS_TRAINING__LEARNING_RATE", "10000")
    env.reload()
    dag = env.dag()
    assert "stale" in dag.description
    dr = compat.dag_test(dag, _utc(2))

    assert dr.state == DagRunState.FAILED
    tis = _tis(dr)
    assert tis["check_compiled_pipeline"].state == TaskInstanceState.FAILED
    assert {ti.state for tid, ti in tis.items() if tid != "check_compiled_pipeline"} == {
        TaskInstanceState.UPSTREAM_FAILED
    }


def test_run_3_compares_with_the_blessed_model_and_does_not_push_a_worse_one(env, run_1_model_uri):
    from anomalyops_airflow import ir

    ir.compile_project_pipeline(env.settings)
    before = env.versions()
    # Two days validated since run 1 (their Dataset events coalesce into one run): the earlier
    # one must be registered as a span by register_window_spans, or the window would skip it.
    skipped_day = env.add_validated_day()
    newest = env.add_validated_day()
    dr = compat.dag_test(env.dag(), _utc(3))

    tis = _tis(dr)
    assert tis["register_window_spans"].xcom_pull(task_ids="register_window_spans") == [
        skipped_day.isoformat()
    ]
    report = _gate_report(tis)
    # The window is the newest 3 spans (first, last): without the registered day it would
    # reach back to run 1's first day.
    window = env.settings.training.window_days
    first = newest - dt.timedelta(days=window - 1)
    assert report["training_spans"] == [first.isoformat(), newest.isoformat()]
    assert report["baseline_model_uri"] == run_1_model_uri
    assert report["baseline"] is not None
    assert report["rule"] in ("sanity", "auc_pr_no_regression", "mean_score_no_regression")
    assert report["blessed"] is False, report["reasons"]
    assert env.versions() == before, "a model the gate did not bless reached serving"
