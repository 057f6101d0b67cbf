"""Configuration-level proof of the path beyond one machine (docs/operations.md):

- a Flink, Spark or Dataflow runner's arguments, set once in ``ANOMALYOPS_BEAM_ARGS``, reach
  every Beam-based TFX component of the compiled pipeline the training DAG runs;
- the daily data path (land, ingest, the GX + TFDV gate, promote) works unchanged on an
  object-store lake root.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

import fsspec
import pytest

RUNNERS = {
    "flink": [
        "--runner=FlinkRunner",
        "--flink_master=flink-jobmanager:8081",
        "--environment_type=EXTERNAL",
        "--environment_config=localhost:50000",
        "--parallelism=8",
    ],
    "spark": [
        "--runner=SparkRunner",
        "--spark_master_url=spark://spark-master:7077",
        "--environment_type=DOCKER",
        "--environment_config=registry.example.com/anomalyops-beam:1.0",
    ],
    "dataflow": [
        "--runner=DataflowRunner",
        "--project=my-gcp-project",
        "--region=europe-west1",
        "--temp_location=gs://my-bucket/beam-tmp",
        "--sdk_container_image=europe-docker.pkg.dev/my-gcp-project/anomalyops/beam:1.0",
    ],
}


def _beam_specs(ir) -> dict[str, list[str]]:
    """node id -> Beam args, for every node the IR runs with a Beam executor."""
    from tfx.proto.orchestration import executable_spec_pb2, pipeline_pb2

    deployment = pipeline_pb2.IntermediateDeploymentConfig()
    ir.deployment_config.Unpack(deployment)
    found = {}
    for node_id, spec in deployment.executor_specs.items():
        if spec.Is(executable_spec_pb2.BeamExecutableSpec.DESCRIPTOR):
            beam = executable_spec_pb2.BeamExecutableSpec()
            spec.Unpack(beam)
            found[node_id] = list(beam.beam_pipeline_args)
    return found


@pytest.mark.timeout(600)
@pytest.mark.parametrize("runner", sorted(RUNNERS))
def test_runner_arguments_reach_every_beam_component(runner, settings_env, monkeypatch):
    from tfx.dsl.components.base import executor_spec

    from anomalyops.spec import load_spec
    from anomalyops_airflow import ir as ir_mod
    from anomalyops_airflow.launcher import beam_runs_in_process
    from anomalyops_tfx.pipeline import create_pipeline

    args = RUNNERS[runner]
    monkeypatch.setenv("ANOMALYOPS_BEAM_ARGS", json.dumps(args))  # JSON list, as in .env
    settings_env.cache_clear()
    settings = settings_env()
    assert settings.beam_args == args

    pipeline = create_pipeline(settings, load_spec(settings.feature_spec_path))
    assert list(pipeline.beam_pipeline_args) == args
    beam_components = {
        c.id
        for c in pipeline.components
        if isinstance(c.executor_spec, executor_spec.BeamExecutorSpec)
    }
    # The data-parallel work: reading the lake, statistics, the Transform analysis.
    assert {"StatisticsGen", "Transform"} <= beam_components
    assert any("ExampleGen" in c for c in beam_components)

    compiled = _beam_specs(ir_mod.compile_to_ir(pipeline))
    assert set(compiled) == beam_components
    for node_id, node_args in compiled.items():
        assert node_args[: len(args)] == args, f"{node_id} runs with {node_args}"
    # A remote runner keeps TFX's ephemeral package (workers need TFX's code); only an
    # in-process runner may skip building it.
    assert not beam_runs_in_process(args)


def test_the_default_runner_is_in_process(settings_env):
    from anomalyops.settings import DEFAULT_BEAM_ARGS
    from anomalyops_airflow.launcher import beam_runs_in_process

    assert settings_env().beam_args == DEFAULT_BEAM_ARGS
    assert beam_runs_in_process(DEFAULT_BEAM_ARGS)


@pytest.mark.timeout(600)
def test_the_daily_gate_runs_on_an_object_store_lake(settings_env, monkeypatch, tmp_path):
    from anomalyops.ingest import ingest, land
    from anomalyops.lake import Lake, Zone
    from anomalyops.validation.day_actions import promote
    from anomalyops.validation.quality_gate import run_gate

    root = f"memory://lake-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("ANOMALYOPS_LAKE_ROOT", root)
    monkeypatch.setenv("ANOMALYOPS_VALIDATION__DATA_DOCS_DIR", str(tmp_path / "data_docs"))
    settings_env.cache_clear()
    settings = settings_env()
    lake = Lake(settings.lake_root)
    days = [dt.date(2026, 11, 2), dt.date(2026, 11, 3)]
    try:
        for day in days:  # the second day's drift check reads the first from the object store
            land(day, settings)
            ingest(day, settings)
            gate = run_gate(day, settings)
            assert gate["decision"] != "fail", gate["reasons"]
            assert promote(day, settings)["path"].startswith("memory://")
        assert lake.partitions(Zone.VALIDATED) == days
        assert lake.partitions(Zone.REPORTS) == days
    finally:
        fs = fsspec.filesystem("memory")
        if fs.exists(root):
            fs.rm(root, recursive=True)


def test_ml_metadata_runs_on_postgresql(postgres_url, settings_env, monkeypatch):
    """The Compose stack keeps ML Metadata in PostgreSQL: the connection the tasks build from
    ``ANOMALYOPS_TRAINING__METADATA_DB_URL`` opens, creates its schema and stores lineage."""
    from ml_metadata.proto import metadata_store_pb2
    from tfx.orchestration import metadata

    from anomalyops_tfx.pipeline import metadata_connection_config

    monkeypatch.setenv("ANOMALYOPS_TRAINING__METADATA_DB_URL", f"{postgres_url}/mlmd")
    settings_env.cache_clear()
    config = metadata_connection_config(settings_env())
    assert config.WhichOneof("config") == "postgresql"
    with metadata.Metadata(config) as m:
        type_id = m.store.put_artifact_type(metadata_store_pb2.ArtifactType(name="Examples"))
        [artifact_id] = m.store.put_artifacts(
            [metadata_store_pb2.Artifact(type_id=type_id, uri="/data/tfx/ExampleGen/1")]
        )
    with metadata.Metadata(config) as m:  # a new connection (another task) sees it
        [artifact] = m.store.get_artifacts_by_id([artifact_id])
        assert artifact.uri == "/data/tfx/ExampleGen/1"
    assert not settings_env().mlmd_path.exists(), "no SQLite file when a server is configured"
