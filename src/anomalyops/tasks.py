"""Airflow task callables: thin adapters from an Airflow context to the logic modules.

DAG files reference these; each reads the logical date Airflow passes (never ``now()``),
builds settings from the environment at run time, and returns a small JSON-able summary for
XCom. Heavy imports happen inside the functions so that parsing a DAG stays cheap.
"""

from __future__ import annotations

from anomalyops.settings import get_settings


def land(ds: str) -> list[str]:
    from anomalyops.ingest import land as _land

    return _land(ds, get_settings())


def ingest(ds: str) -> dict:
    from anomalyops.ingest import ingest_as_dict

    return ingest_as_dict(ds, get_settings())


def check_compiled_pipeline() -> dict:
    """Fail the training run early when the compiled TFX pipeline is missing or stale."""
    from anomalyops.orchestration import ir

    status = ir.project_status(get_settings())
    if not status.fresh:
        raise ir.CompiledPipelineError(status.message)
    return {"fingerprint": status.actual}


def run_tfx_node(node_id: str, ir_path: str, run_id: str) -> dict:
    """Run one TFX node of the compiled pipeline; the Airflow run id is the TFX run id."""
    from airflow.exceptions import AirflowSkipException

    from anomalyops.orchestration.launcher import mlmd_connection_config, run_node

    settings = get_settings()
    result = run_node(
        ir_path,
        node_id,
        run_id,
        connection_config=mlmd_connection_config(settings),
        skip_beam_sdist=settings.orchestration.skip_beam_sdist,
    )
    if result.state == "skipped":
        # TFX resolved no inputs to run on (a false condition upstream, e.g. a gate said no).
        raise AirflowSkipException(f"TFX skipped node {node_id!r} in run {run_id!r}")
    return result.as_dict()
