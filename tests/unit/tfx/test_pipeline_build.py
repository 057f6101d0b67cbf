"""create_pipeline() builds and compiles to IR without I/O; ML Metadata config from settings."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from anomalyops.settings import Settings, TrainingSettings
from anomalyops.spec import load_spec
from anomalyops_tfx import pipeline as pipeline_lib

EXPECTED_NODES = [
    "ExampleGen",
    "StatisticsGen",
    "ImportSchemaGen",
    "ExampleValidator",
    "SchemaCheck",
    "window_resolver",
    "Transform",
    "Trainer",
    "latest_blessed_model_resolver",
    "EvaluationGate",
    "Pusher",
    "ServingNotifier",
]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from tfx.dsl.compiler import compiler

    root = tmp_path_factory.mktemp("build")
    settings = Settings(
        lake_root=str(root / "lake"),
        pipeline_root=root / "tfx",
        serving_model_dir=root / "serving" / "m",
        training=TrainingSettings(window_days=5),
    )
    spec = load_spec(settings.feature_spec_path)
    pipeline = pipeline_lib.create_pipeline(settings, spec, schema_path=str(root / "s.pbtxt"))
    ir = compiler.Compiler().compile(pipeline)
    nodes = {n.pipeline_node.node_info.id: n.pipeline_node for n in ir.nodes}
    return settings, pipeline, ir, nodes, root


def test_build_touches_no_files(built):
    *_, root = built
    assert sorted(p.name for p in root.iterdir()) == []


def test_nodes_and_order(built):
    _, _, _, nodes, _ = built
    assert sorted(nodes) == sorted(EXPECTED_NODES)
    # Nothing trains on a rejected day; Transform's analysis may run beside the checks.
    assert "SchemaCheck" in nodes["Trainer"].upstream_nodes
    assert "SchemaCheck" not in nodes["Transform"].upstream_nodes
    assert "ExampleGen" in nodes["window_resolver"].upstream_nodes
    assert list(nodes["ServingNotifier"].upstream_nodes) == ["Pusher"]


def test_user_code_by_dotted_path_no_module_file(built):
    _, _, _, nodes, _ = built
    trainer = nodes["Trainer"].parameters.parameters
    transform = nodes["Transform"].parameters.parameters
    assert trainer["run_fn"].field_value.string_value == "anomalyops_tfx.trainer.run_fn"
    assert (
        transform["preprocessing_fn"].field_value.string_value
        == "anomalyops_tfx.preprocessing.preprocessing_fn"
    )
    assert "module_file" not in trainer and "module_file" not in transform
    assert "compressor_station" in transform["custom_config"].field_value.string_value


def test_transform_only_analyses(built):
    """No TFDV pass over the window, no per-span analyzer cache: each cost most of Transform's
    time, and nothing reads what they wrote (docs/performance.md)."""
    _, _, _, nodes, _ = built
    transform = nodes["Transform"]
    params = transform.parameters.parameters
    assert params["disable_statistics"].field_value.int_value == 1
    assert params["force_tf_compat_v1"].field_value.int_value == 0
    assert "updated_analyzer_cache" not in transform.outputs.outputs
    assert "pre_transform_stats" not in transform.outputs.outputs


def test_window_and_baseline_read_across_runs(built):
    """Resolver inputs must not be limited to the current pipeline run's context."""
    _, _, _, nodes, _ = built
    for node_id in ("window_resolver", "latest_blessed_model_resolver"):
        for spec in nodes[node_id].inputs.inputs.values():
            for channel in spec.channels:
                types = [q.type.name for q in channel.context_queries]
                assert "pipeline_run" not in types, node_id
    window = str(nodes["window_resolver"].inputs)
    assert "regime_window.strategy.RegimeWindowStrategy" in window
    assert 'key: "num_spans"' in window and "int_value: 5" in window
    assert 'key: "restart_score"' in window


def test_beam_args_and_split_pattern(built):
    settings, pipeline, _, nodes, _ = built
    assert pipeline.beam_pipeline_args == settings.beam_args
    assert "--runner=FnApiRunner" in pipeline.beam_pipeline_args
    input_config = nodes["ExampleGen"].parameters.parameters["input_config"].field_value
    assert pipeline_lib.SPLIT_PATTERN in input_config.string_value


def test_span_date_pins_example_gen(tmp_path):
    settings = Settings(lake_root=str(tmp_path), pipeline_root=tmp_path / "tfx")
    spec = load_spec(settings.feature_spec_path)
    day = dt.date(2026, 11, 3)
    ingest = pipeline_lib.create_ingest_pipeline(settings, spec, day)
    assert [c.id for c in ingest.components] == ["ExampleGen"]
    config = json.loads(ingest.components[0].exec_properties["range_config"])
    assert config["static_range"]["start_span_number"] == pipeline_lib.span_of(day) == 20760


def test_metadata_defaults_to_sqlite_under_pipeline_root(tmp_path):
    config = pipeline_lib.metadata_connection_config(Settings(pipeline_root=tmp_path))
    assert config.sqlite.filename_uri == str(tmp_path / "metadata.sqlite")


@pytest.mark.parametrize(
    ("url", "kind", "host", "port", "db"),
    [
        ("mysql://u:p%40ss@db:3307/mlmd", "mysql", "db", 3307, "mlmd"),
        ("postgresql://u:pw@pg/mlmd", "postgresql", "pg", "5432", "mlmd"),
    ],
)
def test_metadata_server_from_url(url, kind, host, port, db):
    config = pipeline_lib.metadata_connection_config(
        Settings(training=TrainingSettings(metadata_db_url=url))
    )
    server = getattr(config, kind)
    assert (server.host, server.port) == (host, port)
    assert (server.database if kind == "mysql" else server.dbname) == db
    if kind == "mysql":
        assert server.password == "p@ss"


def test_metadata_url_errors_are_clear():
    with pytest.raises(ValueError, match="not supported"):
        pipeline_lib.metadata_connection_config(
            Settings(training=TrainingSettings(metadata_db_url="sqlite://x/y"))
        )
    with pytest.raises(ValueError, match="database name"):
        pipeline_lib.metadata_connection_config(
            Settings(training=TrainingSettings(metadata_db_url="mysql://u:p@host"))
        )


def test_importing_pipeline_modules_loads_no_tensorflow_or_tfx():
    """The DAG side and the CLI import these modules; TF/TFX cost ~25 s cold."""
    import subprocess
    import sys

    code = (
        "import sys, anomalyops_tfx.pipeline, anomalyops_tfx.runners.local_runner, "
        "anomalyops_tfx.features, anomalyops_tfx.model, anomalyops_tfx.trainer, "
        "anomalyops_tfx.preprocessing\n"
        "heavy = [m for m in ('tensorflow', 'tfx', 'apache_beam', 'tensorflow_transform') "
        "if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_window_restart_can_be_switched_off(tmp_path):
    from tfx.dsl.compiler import compiler

    settings = Settings(
        lake_root=str(tmp_path / "lake"),
        pipeline_root=tmp_path / "tfx",
        training=TrainingSettings(window_restart_drift_score=None),
    )
    pipeline = pipeline_lib.create_pipeline(
        settings, load_spec(settings.feature_spec_path), schema_path=str(tmp_path / "s.pbtxt")
    )
    ir = compiler.Compiler().compile(pipeline)
    (window,) = [n for n in ir.nodes if n.pipeline_node.node_info.id == "window_resolver"]
    assert "RegimeWindowStrategy" in str(window.pipeline_node.inputs)
    assert "restart_score" not in str(window.pipeline_node.inputs)
