"""Register the training window's validated days as ExampleGen spans before a training run.

The training pipeline's ExampleGen ingests the newest validated day; the window resolver then
trains on the spans ML Metadata knows. When several days are validated between two training
runs (a backfill: their Dataset events coalesce into one run), the days before the newest would
be missing from the window. This registers them first, with the pipeline's own
``create_ingest_pipeline`` (ExampleGen pinned to one day). In daily operation nothing is
missing and this costs an ML Metadata query, no TensorFlow import.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from anomalyops.settings import Settings

log = logging.getLogger(__name__)


def registered_spans(settings: Settings) -> set[int]:
    """Spans of the live Examples artifacts ExampleGen has produced (any run)."""
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    from anomalyops_tfx.pipeline import EXAMPLE_GEN_ID, metadata_connection_config

    if settings.training.metadata_db_url is None and not settings.mlmd_path.exists():
        return set()
    store = metadata_store.MetadataStore(metadata_connection_config(settings))
    context = store.get_context_by_type_and_name(
        "node", f"{settings.pipeline_name}.{EXAMPLE_GEN_ID}"
    )
    if context is None:
        return set()
    spans = set()
    for artifact in store.get_artifacts_by_context(context.id):
        span = artifact.properties.get("span") or artifact.custom_properties.get("span")
        if span is not None and artifact.state == metadata_store_pb2.Artifact.LIVE:
            spans.add(span.int_value)
    return spans


def missing_days(settings: Settings) -> list[dt.date]:
    """Validated days of the window, before the newest, that are not registered spans yet."""
    from anomalyops_tfx.pipeline import backfill_days, span_of

    days = backfill_days(settings)
    if not days:
        return []
    known = registered_spans(settings)
    return [day for day in days if span_of(day) not in known]


def register_missing_spans(settings: Settings) -> list[str]:
    """Ingest each missing day of the window as its own span; returns the days registered."""
    days = missing_days(settings)
    if not days:
        return []
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner

    from anomalyops.spec import load_spec
    from anomalyops_airflow.launcher import beam_runs_in_process, no_ephemeral_sdist
    from anomalyops_tfx.pipeline import create_ingest_pipeline

    spec = load_spec(settings.feature_spec_path)
    skip_sdist = settings.orchestration.skip_beam_sdist and beam_runs_in_process(settings.beam_args)
    with no_ephemeral_sdist(skip_sdist):
        for day in days:
            log.info("registering validated day %s as an ExampleGen span", day)
            LocalDagRunner().run(create_ingest_pipeline(settings, spec, day))
    return [day.isoformat() for day in days]
