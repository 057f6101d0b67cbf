"""The launcher's pure parts: run-id substitution, ML Metadata connection, Beam sdist skip."""

from __future__ import annotations

import json

import pytest

from anomalyops_airflow import launcher


@pytest.fixture
def toy_ir(toy_ir_json):
    from google.protobuf import json_format
    from tfx.proto.orchestration import executable_spec_pb2, pipeline_pb2

    assert executable_spec_pb2  # registers the executor specs packed in deploymentConfig
    return json_format.Parse(json.dumps(toy_ir_json), pipeline_pb2.Pipeline())


def test_airflow_run_id_becomes_the_tfx_pipeline_run_id(toy_ir):
    run_id = "manual__2026-11-27T10:00:00+00:00"
    launcher.substitute_run_id(toy_ir, run_id)

    assert toy_ir.runtime_spec.pipeline_run_id.field_value.string_value == run_id
    for node in toy_ir.nodes:
        [run_context] = [
            c for c in node.pipeline_node.contexts.contexts if c.type.name == "pipeline_run"
        ]
        assert run_context.name.field_value.string_value == run_id
    assert "runtimeParameter" not in str(toy_ir.runtime_spec)


def test_empty_run_id_is_rejected(toy_ir):
    with pytest.raises(ValueError, match="run_id"):
        launcher.substitute_run_id(toy_ir, "")


def test_unknown_node_lists_the_known_ones(toy_ir):
    with pytest.raises(KeyError, match=r"'Nope' is not in pipeline 'toy'.*MakeData"):
        launcher._find_node(toy_ir, "Nope")
    assert launcher._find_node(toy_ir, "Train").node_info.id == "Train"


@pytest.mark.parametrize(
    ("args", "in_process"),
    [
        (["--runner=FnApiRunner", "--direct_running_mode=in_memory"], True),
        (["--direct_num_workers=1"], True),  # Beam's default is the DirectRunner
        (["--runner", "DirectRunner"], True),
        (["--runner=apache_beam.runners.portability.fn_api_runner.FnApiRunner"], True),
        (["--runner=FlinkRunner", "--flink_master=host:8081"], False),
        (["--runner=DataflowRunner", "--project=p"], False),
        (["--runner=SparkRunner"], False),
    ],
)
def test_beam_runs_in_process(args, in_process):
    assert launcher.beam_runs_in_process(args) is in_process


def test_no_ephemeral_sdist_patches_only_inside_the_block():
    from tfx.utils import dependency_utils

    original = dependency_utils.make_beam_dependency_flags
    with launcher.no_ephemeral_sdist(enabled=True):
        assert dependency_utils.make_beam_dependency_flags(["--runner=FnApiRunner"]) == [
            "--runner=FnApiRunner"
        ]
    assert dependency_utils.make_beam_dependency_flags is original
    with launcher.no_ephemeral_sdist(enabled=False):
        assert dependency_utils.make_beam_dependency_flags is original
