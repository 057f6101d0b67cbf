"""FileBasedExampleGen executor that reads the lake's validated Parquet partitions."""

from __future__ import annotations

import datetime as dt
import json
import os
from typing import Any

import apache_beam as beam
import pyarrow_hotfix  # noqa: F401  (CVE-2023-47248) before Beam reads the lake's Parquet
from absl import logging
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.dsl.io import fileio
from tfx.types import standard_component_specs

from anomalyops_tfx.components.lake_example_gen import logic
from anomalyops_tfx.components.regime_window.logic import DRIFT_SCORE_PROPERTY, max_drift_score


class _TableToExamples(beam.DoFn):
    def process(self, table):
        yield from logic.table_to_examples(table)


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
def _LakeParquetToExample(
    pipeline: beam.Pipeline, exec_properties: dict[str, Any], split_pattern: str
) -> beam.pvalue.PCollection:
    pattern = os.path.join(exec_properties[standard_component_specs.INPUT_BASE_KEY], split_pattern)
    partitions = logic.check_partitions_complete(fileio.glob(pattern))
    logging.info("Lake ExampleGen reads %s", partitions)
    return (
        pipeline
        | "ReadLakeParquet" >> beam.io.ReadFromParquetBatched(pattern)
        | "ToTFExample" >> beam.ParDo(_TableToExamples())
    )


class Executor(BaseExampleGenExecutor):
    """Parquet -> tf.Example with lake-aware typing (timestamps as epoch micros).

    Every column of the partition becomes a feature; the schema (ExampleValidator) is what
    decides whether an unexpected column is acceptable.
    """

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return _LakeParquetToExample

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        super().Do(input_dict, output_dict, exec_properties)
        span = exec_properties.get("span")
        if span is None:
            return
        score = drift_score_of_day(
            exec_properties[standard_component_specs.INPUT_BASE_KEY],
            dt.date(1970, 1, 1) + dt.timedelta(days=int(span)),
        )
        if score is None:
            return
        # Read by the training window's resolver (regime_window): a sudden shift restarts it.
        for examples in output_dict[standard_component_specs.EXAMPLES_KEY]:
            examples.set_float_custom_property(DRIFT_SCORE_PROPERTY, score)


def drift_score_of_day(lake_root: str, day: dt.date) -> float | None:
    """The validation gate's regime-change score for ``day`` (None without a drift report)."""
    from anomalyops.lake import Lake, Zone
    from anomalyops.validation import report

    lake = Lake(lake_root)
    try:
        data = lake.read_file(Zone.REPORTS, day, report.DRIFT_JSON)
    except FileNotFoundError:
        logging.info("No drift report for %s: span carries no drift score", day)
        return None
    try:
        return max_drift_score(json.loads(data))
    except (ValueError, TypeError) as exc:
        path = lake.uri(report.report_path(lake, day, report.DRIFT_JSON))
        raise ValueError(f"drift report {path} is not valid JSON: {exc}") from exc
