"""The IR-built Airflow DAG runs a real (toy) TFX pipeline under ``dag.test()``.

Proves the orchestration contract on a three-node pipeline (CsvExampleGen -> Train -> Push):
one task per node, the Airflow run id is the TFX pipeline run id, a node that fails once is
retried by Airflow (UP_FOR_RETRY, try 2) and its new output reaches the downstream node, and a
second DagRun reuses the first run's outputs through TFX's cache.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.helpers import toy_pipeline

pytestmark = pytest.mark.timeout(600)

TOY_SOURCE = Path(toy_pipeline.__file__)


def check_toy_compiled(compiled_dir: str) -> None:
    from anomalyops_airflow import ir

    compiled = ir.CompiledPipeline(Path(compiled_dir), toy_pipeline.PIPELINE_NAME)
    status = ir.check(compiled, ir.compute_fingerprint(files=[TOY_SOURCE]))
    if not status.fresh:
        raise ir.CompiledPipelineError(status.message)


@pytest.fixture(scope="module")
def toy(airflow_db, tmp_path_factory):
    from anomalyops.settings import get_settings
    from anomalyops_airflow import ir

    tmp = tmp_path_factory.mktemp("toy")
    data = tmp / "data"
    data.mkdir()
    rows = "\n".join(f"{i},{i * 0.5}" for i in range(50))
    (data / "data.csv").write_text(f"x,y\n{rows}\n")
    mp = pytest.MonkeyPatch()
    mp.setenv("ANOMALYOPS_PIPELINE_ROOT", str(tmp / "tfx"))
    # With an in-process Beam runner the launcher must not package TFX for remote workers.
    mp.setattr(
        "tfx.utils.dependency_utils.build_ephemeral_package",
        lambda: pytest.fail("TFX built a tfx_ephemeral sdist for an in-process Beam runner"),
    )
    get_settings.cache_clear()
    settings = get_settings()
    flag = tmp / "train_failed_once"
    pipeline = toy_pipeline.create_pipeline(
        settings.pipeline_root, data, settings.mlmd_path, fail_once_flag=str(flag)
    )
    compiled = ir.write_compiled(
        ir.compile_to_ir(pipeline),
        ir.CompiledPipeline(tmp / "compiled", toy_pipeline.PIPELINE_NAME),
        ir.compute_fingerprint(files=[TOY_SOURCE]),
    )
    yield compiled, settings, flag
    mp.undo()
    get_settings.cache_clear()


def _build_dag(compiled):
    from airflow import DAG

    from anomalyops_airflow import dag_builder, ir, tasks

    status = ir.check(compiled, ir.compute_fingerprint(files=[TOY_SOURCE]))
    assert status.fresh, status.message
    with DAG(
        dag_id="toy_tfx_ir",
        schedule=None,
        start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
        default_args={"owner": "test", "retries": 1, "retry_delay": dt.timedelta(seconds=1)},
    ) as dag:
        dag_builder.add_pipeline_tasks(
            compiled,
            status,
            check_callable=check_toy_compiled,
            check_kwargs={"compiled_dir": str(compiled.directory)},
            node_callable=tasks.run_tfx_node,
        )
    return dag


def _executions(settings, run_id: str) -> dict[str, list]:
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(settings.mlmd_path)
    store = metadata_store.MetadataStore(config)
    context = store.get_context_by_type_and_name("pipeline_run", run_id)
    assert context is not None, f"no TFX pipeline_run context named {run_id!r}"
    by_type: dict[str, list] = {}
    for execution in store.get_executions_by_context(context.id):
        type_name = store.get_execution_types_by_id([execution.type_id])[0].name
        by_type.setdefault(type_name.rsplit(".", 1)[-1], []).append(execution)
    return by_type


def test_failed_node_is_retried_and_its_new_output_reaches_downstream(toy):
    from airflow.utils.state import DagRunState, TaskInstanceState
    from ml_metadata.proto import metadata_store_pb2

    compiled, settings, flag = toy
    dag = _build_dag(compiled)
    assert set(dag.task_ids) == {"check_compiled_pipeline", "CsvExampleGen", "Train", "Push"}
    assert dag.task_dict["Train"].upstream_task_ids == {"CsvExampleGen"}

    dr = dag.test(execution_date=dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc))

    assert dr.state == DagRunState.SUCCESS
    assert flag.exists(), "Train did not fail on its first attempt"
    tis = {ti.task_id: ti for ti in dr.get_task_instances()}
    assert tis["Train"].state == TaskInstanceState.SUCCESS
    assert tis["Train"].try_number == 2, "Train was not retried by Airflow"
    assert tis["Push"].try_number == 1

    executions = _executions(settings, dr.run_id)
    # The retry re-ran the FAILED execution registered by the first attempt (no duplicate).
    [train] = executions["Train"]
    assert train.last_known_state == metadata_store_pb2.Execution.COMPLETE
    pushed_from = tis["Push"].xcom_pull(task_ids="Push")["outputs"]["pushed"][0]
    model_uri = tis["Train"].xcom_pull(task_ids="Train")["outputs"]["model"][0]
    assert model_uri.endswith(f"/{train.id}")
    assert Path(pushed_from, "source.txt").read_text() == model_uri
    assert Path(model_uri, "model.txt").exists()


def test_second_run_reuses_outputs_through_the_cache(toy):
    from airflow.utils.state import DagRunState

    compiled, _, _ = toy
    dag = _build_dag(compiled)
    dr = dag.test(execution_date=dt.datetime(2026, 1, 3, tzinfo=dt.timezone.utc))
    assert dr.state == DagRunState.SUCCESS
    states = {
        ti.task_id: ti.xcom_pull(task_ids=ti.task_id)["state"]
        for ti in dr.get_task_instances()
        if ti.task_id != "check_compiled_pipeline"
    }
    assert states == {"CsvExampleGen": "cached", "Train": "cached", "Push": "cached"}
