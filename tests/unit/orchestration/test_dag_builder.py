"""IR JSON -> Airflow tasks, with no TensorFlow/TFX import."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from anomalyops_airflow import dag_builder, ir
from anomalyops_airflow.dag_builder import CHECK_TASK_ID, IrFormatError


def _noop(**_):
    return None


def test_ir_nodes_reads_ids_types_and_upstream_in_order(toy_ir_json):
    nodes = dag_builder.ir_nodes(toy_ir_json)
    assert [n.node_id for n in nodes] == ["MakeData", "Train", "Push"]
    assert [n.upstream for n in nodes] == [(), ("MakeData",), ("Train",)]
    assert nodes[1].node_type == "toy.Train"


def test_task_ids_are_sanitised_and_collisions_rejected(diamond_ir_json):
    assert dag_builder.task_id_for("my node/1") == "my_node_1"
    assert dag_builder.task_id_for("Trainer.v2-a") == "Trainer.v2-a"
    diamond_ir_json["nodes"].append(
        {"pipelineNode": {"nodeInfo": {"id": "Example Gen"}, "upstreamNodes": []}}
    )
    diamond_ir_json["nodes"].append(
        {"pipelineNode": {"nodeInfo": {"id": "Example/Gen"}, "upstreamNodes": []}}
    )
    with pytest.raises(IrFormatError, match="same task id 'Example_Gen'"):
        dag_builder.ir_nodes(diamond_ir_json)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"nodes": []}, "no nodes"),
        ({}, "no nodes"),
        ({"nodes": [{"subPipeline": {}}]}, "'subPipeline', only pipelineNode"),
        ({"nodes": [{"pipelineNode": {"nodeInfo": {}}}]}, "no nodeInfo.id"),
        (
            {"nodes": [{"pipelineNode": {"nodeInfo": {"id": "A"}, "upstreamNodes": ["B"]}}]},
            r"'A' depends on unknown nodes \['B'\]",
        ),
    ],
)
def test_malformed_ir_is_named(document, message):
    with pytest.raises(IrFormatError, match=message):
        dag_builder.ir_nodes(document)


def test_unreadable_json_names_the_file(tmp_path):
    bad = tmp_path / "p.json"
    bad.write_text("{nope")
    with pytest.raises(IrFormatError, match=r"p\.json: not valid JSON"):
        dag_builder.load_ir_json(bad)


def _compiled(tmp_path: Path, document: dict) -> ir.CompiledPipeline:
    compiled = ir.CompiledPipeline(tmp_path, "p")
    compiled.json_path.write_text(json.dumps(document))
    compiled.pb_path.write_bytes(b"")
    return compiled


def _build(compiled, status):
    from anomalyops_airflow.compat import DAG

    with DAG(
        "t",
        schedule=None,
        start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
        default_args={"retries": 3, "owner": "x"},
    ) as dag:
        tasks = dag_builder.add_pipeline_tasks(
            compiled,
            status,
            check_callable=_noop,
            node_callable=_noop,
            check_kwargs={"a": 1},
        )
    return dag, tasks


def test_one_task_per_node_with_ir_edges_and_the_check_first(tmp_path, diamond_ir_json):
    compiled = _compiled(tmp_path, diamond_ir_json)
    dag, tasks = _build(compiled, ir.Status("fresh", "ok", "x", "x"))

    assert set(dag.task_ids) == {CHECK_TASK_ID} | {
        n["pipelineNode"]["nodeInfo"]["id"] for n in diamond_ir_json["nodes"]
    }
    assert set(tasks) == set(dag.task_ids)
    assert dag.task_dict[CHECK_TASK_ID].downstream_task_ids == {"ExampleGen", "ImportSchemaGen"}
    assert dag.task_dict["ExampleValidator"].upstream_task_ids == {
        "StatisticsGen",
        "ImportSchemaGen",
    }
    assert dag.task_dict["Pusher"].upstream_task_ids == {"Trainer"}
    trainer = dag.task_dict["Trainer"]
    assert trainer.op_kwargs == {"node_id": "Trainer", "ir_path": str(compiled.pb_path)}
    assert trainer.trigger_rule == "none_failed"
    assert trainer.retries == 3
    assert dag.task_dict[CHECK_TASK_ID].op_kwargs == {"a": 1}


def test_stale_ir_keeps_the_graph_and_missing_ir_gives_only_the_check(tmp_path, toy_ir_json):
    compiled = _compiled(tmp_path, toy_ir_json)
    dag, _ = _build(compiled, ir.Status("stale", "stale!", "x", "y"))
    assert set(dag.task_ids) == {CHECK_TASK_ID, "MakeData", "Train", "Push"}
    assert "stale!" in dag.task_dict[CHECK_TASK_ID].doc_md

    compiled.json_path.unlink()
    dag, _ = _build(compiled, ir.Status("missing", "run it", "x", None))
    assert dag.task_ids == [CHECK_TASK_ID]


def test_default_args_and_concurrency_follow_settings(monkeypatch):
    from anomalyops.settings import Settings

    monkeypatch.setenv("ANOMALYOPS_ORCHESTRATION__RETRIES", "4")
    monkeypatch.setenv("ANOMALYOPS_ORCHESTRATION__RETRY_DELAY_S", "7")
    settings = Settings()
    args = dag_builder.default_args(settings, owner="me")
    assert args["retries"] == 4
    assert args["retry_delay"] == dt.timedelta(seconds=7)
    assert args["retry_exponential_backoff"] is True
    assert args["owner"] == "me"
    assert dag_builder.max_active_tasks(settings) == 1  # SQLite ML Metadata: one writer
    monkeypatch.setenv("ANOMALYOPS_TRAINING__METADATA_DB_URL", "postgresql://u:p@db/mlmd")
    assert dag_builder.max_active_tasks(Settings()) == 4


def test_building_tasks_imports_no_heavy_module(tmp_path, toy_ir_json):
    compiled = _compiled(tmp_path, toy_ir_json)
    probe = f"""
import sys, datetime as dt
from anomalyops_airflow.compat import DAG
from anomalyops_airflow import tasks
from anomalyops_airflow import dag_builder, ir, launcher
compiled = ir.CompiledPipeline(__import__('pathlib').Path({str(tmp_path)!r}), 'p')
with DAG('t', schedule=None, start_date=dt.datetime(2026, 1, 1)):
    dag_builder.add_pipeline_tasks(compiled, ir.Status('fresh', '', '', ''),
        check_callable=tasks.check_compiled_pipeline, node_callable=tasks.run_tfx_node)
heavy = ('tensorflow', 'tfx', 'apache_beam', 'ml_metadata', 'google.protobuf')
print(','.join(m for m in heavy if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert compiled.json_path.exists()
    assert out.stdout.strip().splitlines()[-1:] in ([], [""])


def test_prepare_task_sits_between_the_check_and_the_roots(tmp_path, diamond_ir_json):
    from anomalyops_airflow.compat import DAG

    compiled = _compiled(tmp_path, diamond_ir_json)
    with DAG("p", schedule=None, start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)) as dag:
        dag_builder.add_pipeline_tasks(
            compiled,
            ir.Status("fresh", "ok", "x", "x"),
            check_callable=_noop,
            node_callable=_noop,
            prepare=("prep", _noop),
        )
    assert dag.task_dict[CHECK_TASK_ID].downstream_task_ids == {"prep"}
    assert dag.task_dict["prep"].downstream_task_ids == {"ExampleGen", "ImportSchemaGen"}
