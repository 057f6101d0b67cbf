"""FileBasedExampleGen executor that reads the lake's validated Parquet partitions."""

from __future__ import annotations

import os
from typing import Any

import apache_beam as beam
from absl import logging
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.dsl.io import fileio
from tfx.types import standard_component_specs

from anomalyops_tfx.components.lake_example_gen import logic


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
