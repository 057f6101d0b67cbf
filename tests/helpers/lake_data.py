"""Helpers for the TFX pipeline's integration tests: the schema and the days of a tiny lake."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from anomalyops.settings import Settings
from anomalyops.spec import FeatureSpec

CURATED_SCHEMA = Settings().validation.schema_path


def write_schema(spec: FeatureSpec, day_frame: pd.DataFrame, out: Path) -> Path:
    """The curated schema if the repo has one, else one inferred by TFDV from ``day_frame``
    converted exactly as the lake ExampleGen converts it."""
    if CURATED_SCHEMA.exists():
        return CURATED_SCHEMA
    import pyarrow as pa
    import tensorflow as tf
    import tensorflow_data_validation as tfdv

    from anomalyops_tfx.components.lake_example_gen.logic import table_to_examples

    records = out.parent / "schema-sample.tfrecord"
    with tf.io.TFRecordWriter(str(records)) as writer:
        for example in table_to_examples(pa.Table.from_pandas(day_frame, preserve_index=False)):
            writer.write(example.SerializeToString())
    from apache_beam.options.pipeline_options import PipelineOptions

    from anomalyops.settings import DEFAULT_BEAM_ARGS

    stats = tfdv.generate_statistics_from_tfrecord(
        str(records), pipeline_options=PipelineOptions(DEFAULT_BEAM_ARGS)
    )
    tfdv.write_schema_text(tfdv.infer_schema(stats), str(out))
    return out


def days(start: dt.date, n: int) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range(n)]
