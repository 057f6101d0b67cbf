"""Run the training pipeline in this process with TFX's LocalDagRunner (development, tests).

    python -m anomalyops_tfx.runners.local_runner                 # newest validated day
    python -m anomalyops_tfx.runners.local_runner --backfill 14   # first register 14 past days
    python -m anomalyops_tfx.runners.local_runner --span-date 2026-11-20

Settings come from the environment (``ANOMALYOPS_*``), as everywhere else.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from pathlib import Path

from anomalyops.settings import Settings, get_settings
from anomalyops.spec import load_spec
from anomalyops_tfx.pipeline import backfill_days

log = logging.getLogger("anomalyops_tfx.local_runner")


def _prepare(settings: Settings) -> None:
    Path(settings.pipeline_root).mkdir(parents=True, exist_ok=True)
    if settings.training.metadata_db_url is None:
        Path(settings.mlmd_path).parent.mkdir(parents=True, exist_ok=True)


def run(
    settings: Settings | None = None,
    *,
    span_date: dt.date | None = None,
    backfill: bool = False,
    schema_path: str | None = None,
) -> None:
    """Run the pipeline once (optionally registering the window's earlier days first)."""
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner

    from anomalyops_tfx.pipeline import create_ingest_pipeline, create_pipeline

    settings = settings or get_settings()
    spec = load_spec(settings.feature_spec_path)
    _prepare(settings)
    if backfill:
        for day in backfill_days(settings, span_date):
            log.info("Backfill: registering validated day %s as a span", day)
            LocalDagRunner().run(create_ingest_pipeline(settings, spec, day))
    LocalDagRunner().run(
        create_pipeline(settings, spec, schema_path=schema_path, span_date=span_date)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--span-date", type=dt.date.fromisoformat, help="train as of this day")
    parser.add_argument(
        "--backfill",
        action="store_true",
        help="first ingest the earlier validated days of the window (first run, new pipeline root)",
    )
    parser.add_argument(
        "--schema", help="TFDV schema (default: ANOMALYOPS_VALIDATION__SCHEMA_PATH)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    run(span_date=args.span_date, backfill=args.backfill, schema_path=args.schema)
    return 0


if __name__ == "__main__":
    sys.exit(main())
