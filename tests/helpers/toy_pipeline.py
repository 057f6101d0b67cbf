"""A three-node TFX pipeline for orchestration tests: CsvExampleGen (Beam) -> Train -> Push.

``Train`` fails on its first attempt when ``fail_once_flag`` names a file that does not exist
yet (it creates it, then raises), so a test can prove that a retried task re-runs and that its
new output reaches ``Push``.
"""

# No `from __future__ import annotations`: TFX reads the @component annotations at runtime.
import os
from pathlib import Path

from tfx.components import CsvExampleGen
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.orchestration import metadata
from tfx.orchestration import pipeline as pipeline_lib
from tfx.types.standard_artifacts import Examples, Model, PushedModel

from anomalyops.settings import DEFAULT_BEAM_ARGS

PIPELINE_NAME = "toy_orchestration"


@component
def Train(
    examples: InputArtifact[Examples],
    model: OutputArtifact[Model],
    fail_once_flag: Parameter[str] = "",
):
    if fail_once_flag and not os.path.exists(fail_once_flag):
        Path(fail_once_flag).touch()
        raise RuntimeError("Train fails once on purpose")
    Path(model.uri, "model.txt").write_text(examples.uri)


@component
def Push(model: InputArtifact[Model], pushed: OutputArtifact[PushedModel]):
    Path(pushed.uri, "source.txt").write_text(model.uri)


def create_pipeline(root: Path, data_dir: Path, mlmd_path: Path, fail_once_flag: str = ""):
    example_gen = CsvExampleGen(input_base=str(data_dir))
    train = Train(examples=example_gen.outputs["examples"], fail_once_flag=fail_once_flag)
    push = Push(model=train.outputs["model"])
    return pipeline_lib.Pipeline(
        pipeline_name=PIPELINE_NAME,
        pipeline_root=str(root),
        components=[example_gen, train, push],
        enable_cache=True,
        metadata_connection_config=metadata.sqlite_metadata_connection_config(str(mlmd_path)),
        beam_pipeline_args=DEFAULT_BEAM_ARGS,
    )
