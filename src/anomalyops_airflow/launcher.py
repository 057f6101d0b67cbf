"""Run one node of a compiled TFX pipeline with TFX's portable launcher (what one task does).

This is the body of ``LocalDagRunner.run_with_ir`` for a single node, with the pipeline run id
set to the caller's (the Airflow ``run_id``). Because every task of one DagRun shares that run
id, TFX resolves each node's inputs from the same run, and a retried node finds its own FAILED
execution in ML Metadata and re-runs it instead of registering a duplicate (the
``AlreadyExistsError`` of ``AirflowDagRunner``'s legacy launcher). Uses internal TFX APIs: TFX
is pinned (1.16.0) for that reason.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Beam runners that execute in this process: nothing to ship to remote workers.
IN_PROCESS_BEAM_RUNNERS = frozenset({"fnapirunner", "directrunner", "bundlebasedrunner"})


class NodeFailedError(RuntimeError):
    """TFX recorded the node's execution as failed without raising (e.g. input resolution)."""


@dataclasses.dataclass(frozen=True)
class NodeResult:
    node_id: str
    run_id: str
    state: str
    """``complete``, ``cached`` (a previous run's outputs were reused), ``already_succeeded``
    (this run's execution had succeeded before: a cleared task is a no-op) or ``skipped``
    (TFX decided not to run it: a false condition or absent optional inputs)."""
    execution_id: int | None
    outputs: dict[str, list[str]]

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_ir(path: Path | str) -> Any:
    from tfx.proto.orchestration import pipeline_pb2

    ir = pipeline_pb2.Pipeline()
    ir.ParseFromString(Path(path).read_bytes())
    return ir


def substitute_run_id(ir: Any, run_id: str) -> None:
    """Bind the pipeline-run-id runtime parameter of ``ir`` (in place) to ``run_id``."""
    from tfx.dsl.compiler import constants
    from tfx.orchestration.portable import runtime_parameter_utils

    if not run_id:
        raise ValueError("run_id must be a non-empty string")
    runtime_parameter_utils.substitute_runtime_parameter(
        ir, {constants.PIPELINE_RUN_ID_PARAMETER_NAME: run_id}
    )


def beam_runs_in_process(beam_args: Sequence[str]) -> bool:
    """True when the Beam args select a runner that executes in this process."""
    runner = "directrunner"
    args = list(beam_args)
    for i, arg in enumerate(args):
        if arg.startswith("--runner="):
            runner = arg.split("=", 1)[1]
        elif arg == "--runner" and i + 1 < len(args):
            runner = args[i + 1]
    return runner.rsplit(".", 1)[-1].lower() in IN_PROCESS_BEAM_RUNNERS


@contextlib.contextmanager
def no_ephemeral_sdist(enabled: bool = True) -> Iterator[None]:
    """Stop TFX building a ``tfx_ephemeral`` sdist of itself for each Beam component.

    TFX does it (2-3 s, in ``BaseBeamExecutor.__init__``) whenever Beam args are set without
    ``--extra_package``/``--setup_file``, so that remote workers get TFX's code. An in-process
    runner has no remote workers; only use this when ``beam_runs_in_process`` says so.
    """
    if not enabled:
        yield
        return
    from tfx.utils import dependency_utils

    original = dependency_utils.make_beam_dependency_flags
    dependency_utils.make_beam_dependency_flags = lambda beam_pipeline_args: list(
        beam_pipeline_args
    )
    try:
        yield
    finally:
        dependency_utils.make_beam_dependency_flags = original


def _find_node(ir: Any, node_id: str) -> Any:
    for node in ir.nodes:
        if (
            node.WhichOneof("node") == "pipeline_node"
            and node.pipeline_node.node_info.id == node_id
        ):
            return node.pipeline_node
    known = [n.pipeline_node.node_info.id for n in ir.nodes]
    raise KeyError(f"node {node_id!r} is not in pipeline {ir.pipeline_info.id!r} (nodes: {known})")


def run_node(
    ir_path: Path | str,
    node_id: str,
    run_id: str,
    *,
    connection_config: Any | None = None,
    skip_beam_sdist: bool = True,
) -> NodeResult:
    """Launch ``node_id`` of the compiled pipeline at ``ir_path`` as part of run ``run_id``.

    ``connection_config`` overrides the ML Metadata connection compiled into the IR. Raises
    whatever the component raised when it fails, and ``NodeFailedError`` when TFX recorded a
    failure without raising.
    """
    from tfx.orchestration import metadata
    from tfx.orchestration.local import runner_utils
    from tfx.orchestration.portable import launcher
    from tfx.orchestration.portable.mlmd import execution_lib

    ir = load_ir(ir_path)
    substitute_run_id(ir, run_id)
    node = _find_node(ir, node_id)
    deployment = runner_utils.extract_local_deployment_config(ir)
    if connection_config is None:
        connection_config = getattr(
            deployment.metadata_connection_config,
            deployment.metadata_connection_config.WhichOneof("connection_config"),
        )
    executor_spec = runner_utils.extract_executor_spec(deployment, node_id)
    beam_args = (
        list(executor_spec.beam_pipeline_args)
        if executor_spec is not None and hasattr(executor_spec, "beam_pipeline_args")
        else []
    )
    node_launcher = launcher.Launcher(
        pipeline_node=node,
        mlmd_connection=metadata.Metadata(connection_config),
        pipeline_info=ir.pipeline_info,
        pipeline_runtime_spec=ir.runtime_spec,
        executor_spec=executor_spec,
        custom_driver_spec=runner_utils.extract_custom_driver_spec(deployment, node_id),
    )
    log.info("launching TFX node %s of %s, run %s", node_id, ir.pipeline_info.id, run_id)
    with no_ephemeral_sdist(
        skip_beam_sdist and bool(beam_args) and beam_runs_in_process(beam_args)
    ):
        info = node_launcher.launch()

    if info is None or info.execution_id is None:
        return NodeResult(node_id, run_id, "skipped", None, {})
    with metadata.Metadata(connection_config) as m:
        [execution] = m.store.get_executions_by_id([info.execution_id])
    outputs = {
        key: [a.uri for a in artifacts] for key, artifacts in (info.output_dict or {}).items()
    }
    if not execution_lib.is_execution_successful(execution):
        raise NodeFailedError(
            f"TFX recorded execution {execution.id} of node {node_id!r} (run {run_id!r}) as "
            f"{execution.last_known_state}; see the log above for the cause"
        )
    from ml_metadata.proto import metadata_store_pb2

    if execution.last_known_state == metadata_store_pb2.Execution.CACHED:
        state = "cached"
    elif not outputs and info.output_dict is None:
        state = "already_succeeded"
    else:
        state = "complete"
    return NodeResult(node_id, run_id, state, execution.id, outputs)
