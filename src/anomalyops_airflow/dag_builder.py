"""Build Airflow tasks from a compiled TFX pipeline's JSON IR: one task per pipeline node.

Reads the IR with plain ``json`` (no TFX, TensorFlow or protobuf import) so a DAG file built
with it parses in well under a second. Each node task runs ``anomalyops_airflow.tasks.run_tfx_node``,
which launches that one node with TFX's portable launcher, using the Airflow run id as the TFX
pipeline run id. A first task re-checks the compiled pipeline's fingerprint at run time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from anomalyops.settings import Settings
    from anomalyops_airflow.compat import BaseOperator
    from anomalyops_airflow.ir import CompiledPipeline, Status

CHECK_TASK_ID = "check_compiled_pipeline"
_TASK_ID_RE = re.compile(r"[^\w.-]")


class IrFormatError(ValueError):
    """The IR JSON is not a pipeline this module can turn into tasks."""


@dataclasses.dataclass(frozen=True)
class IrNode:
    node_id: str
    task_id: str
    upstream: tuple[str, ...]
    node_type: str


def task_id_for(node_id: str) -> str:
    """An Airflow task id for a TFX node id (Airflow allows letters, digits, ``_.-``)."""
    return _TASK_ID_RE.sub("_", node_id)[:250]


def load_ir_json(path: Path | str) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise IrFormatError(f"{path}: not valid JSON ({exc})") from exc


def ir_nodes(ir: Mapping[str, Any]) -> list[IrNode]:
    """The pipeline's nodes in IR order (topological), with their upstream node ids."""
    nodes = ir.get("nodes")
    if not isinstance(nodes, list) or not nodes:
        raise IrFormatError("IR has no nodes")
    result: list[IrNode] = []
    seen_tasks: dict[str, str] = {}
    for i, entry in enumerate(nodes):
        node = entry.get("pipelineNode") if isinstance(entry, dict) else None
        if node is None:
            kind = next(iter(entry), "?") if isinstance(entry, dict) else type(entry).__name__
            raise IrFormatError(f"IR node #{i} is a {kind!r}, only pipelineNode is supported")
        node_id = node.get("nodeInfo", {}).get("id")
        if not node_id:
            raise IrFormatError(f"IR node #{i} has no nodeInfo.id")
        task_id = task_id_for(node_id)
        if task_id in seen_tasks:
            raise IrFormatError(
                f"nodes {seen_tasks[task_id]!r} and {node_id!r} map to the same task id {task_id!r}"
            )
        seen_tasks[task_id] = node_id
        result.append(
            IrNode(
                node_id=node_id,
                task_id=task_id,
                upstream=tuple(node.get("upstreamNodes", [])),
                node_type=node.get("nodeInfo", {}).get("type", {}).get("name", ""),
            )
        )
    known = {n.node_id for n in result}
    for n in result:
        missing = [u for u in n.upstream if u not in known]
        if missing:
            raise IrFormatError(f"node {n.node_id!r} depends on unknown nodes {missing}")
    return result


def add_pipeline_tasks(
    compiled: CompiledPipeline,
    status: Status,
    *,
    check_callable: Callable[..., Any],
    node_callable: Callable[..., Any],
    check_kwargs: Mapping[str, Any] | None = None,
    prepare: tuple[str, Callable[..., Any]] | None = None,
) -> dict[str, BaseOperator]:
    """Add the check task and one PythonOperator per IR node to the DAG being defined.

    Call inside ``with DAG(...)``. When no compiled pipeline exists, only the check task is
    added (it fails, naming the command to run); when the compiled pipeline is stale, the
    graph is built from it and the check task fails the run before any node runs.
    Node tasks pass ``node_id`` and ``ir_path``; Airflow adds ``run_id`` from the context.
    ``prepare`` (task id, callable) adds a task between the check and the pipeline's roots.
    """
    from anomalyops_airflow.compat import PythonOperator, TriggerRule

    check = PythonOperator(
        task_id=CHECK_TASK_ID,
        python_callable=check_callable,
        op_kwargs=dict(check_kwargs or {}),
        doc_md=f"Fails when the compiled pipeline is missing or stale. At parse: {status.message}.",
    )
    tasks: dict[str, BaseOperator] = {CHECK_TASK_ID: check}
    if status.state == "missing":
        return tasks
    first: BaseOperator = check
    if prepare is not None:
        first = PythonOperator(task_id=prepare[0], python_callable=prepare[1])
        tasks[prepare[0]] = first
        check >> first
    nodes = ir_nodes(load_ir_json(compiled.json_path))
    by_node: dict[str, BaseOperator] = {}
    for node in nodes:
        op = PythonOperator(
            task_id=node.task_id,
            python_callable=node_callable,
            op_kwargs={"node_id": node.node_id, "ir_path": str(compiled.pb_path)},
            # TFX itself decides what a skipped upstream node means for this node's inputs
            # (a gated Pusher skips; a node with optional inputs still runs).
            trigger_rule=TriggerRule.NONE_FAILED,
            doc_md=f"TFX node `{node.node_id}` ({node.node_type}).",
        )
        by_node[node.node_id] = op
        tasks[node.task_id] = op
    for node in nodes:
        if node.upstream:
            for up in node.upstream:
                by_node[up] >> by_node[node.node_id]
        else:
            first >> by_node[node.node_id]
    return tasks


def dag_settings() -> Settings:
    """The settings a DAG file is built with (environment, read at parse time)."""
    from anomalyops.settings import get_settings

    return get_settings()


def start_date(settings: Settings) -> dt.datetime:
    """``ANOMALYOPS_START_DATE`` as the UTC midnight Airflow schedules from."""
    return dt.datetime.combine(settings.start_date, dt.time(), tzinfo=dt.timezone.utc)


def default_args(settings: Settings, **extra: Any) -> dict[str, Any]:
    """Retries with exponential back-off, from ``ANOMALYOPS_ORCHESTRATION__*``."""
    orch = settings.orchestration
    args: dict[str, Any] = {
        "owner": "anomalyops",
        "retries": orch.retries,
        "retry_delay": dt.timedelta(seconds=orch.retry_delay_s),
        "retry_exponential_backoff": True,
        "max_retry_delay": dt.timedelta(minutes=10),
    }
    args.update(extra)
    return args


def max_active_tasks(settings: Settings) -> int:
    """One TFX task at a time on SQLite ML Metadata (one writer); a few on a server database."""
    return 1 if settings.training.metadata_db_url is None else 4
