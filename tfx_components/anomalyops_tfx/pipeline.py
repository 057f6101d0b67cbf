"""``create_pipeline()``: the TFX training pipeline, built from settings and the feature spec.

Building the pipeline is pure: it constructs component objects and reads no files, so the
Airflow side can compile it to IR and the local runner can run it. TFX is imported inside the
functions, never when this module is imported.

Graph (see docs/pipeline.md)::

    ExampleGen (newest validated day = one span)
      -> StatisticsGen -> ExampleValidator (+ ImportSchemaGen) -> SchemaCheck -> Trainer
      -> window_resolver (last N spans, from the newest regime start) -> Transform -> Trainer
      -> EvaluationGate (+ latest_blessed_model_resolver) -> Pusher -> ServingNotifier
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from anomalyops.settings import Settings
from anomalyops.spec import FeatureSpec
from anomalyops_tfx.features import SPEC_KEY, spec_to_config

if TYPE_CHECKING:
    from ml_metadata.proto import metadata_store_pb2
    from tfx.dsl.components.base.base_node import BaseNode
    from tfx.orchestration.pipeline import Pipeline

SPLIT_PATTERN = "validated/ds={YYYY}-{MM}-{DD}/*.parquet"
"""Lake layout as an ExampleGen date pattern: span = days since 1970-01-01."""
HASH_BUCKETS = 100
EXAMPLE_GEN_ID = "ExampleGen"
TRAINER_ID = "Trainer"
GATE_ID = "EvaluationGate"
PREPROCESSING_FN = "anomalyops_tfx.preprocessing.preprocessing_fn"
RUN_FN = "anomalyops_tfx.trainer.run_fn"


def default_schema_path(settings: Settings) -> Path:
    """The curated TFDV schema the validation gate maintains (``ANOMALYOPS_VALIDATION__SCHEMA_PATH``)."""
    return Path(settings.validation.schema_path)


def span_of(day: dt.date) -> int:
    """ExampleGen's span number of a day partition (days since the epoch)."""
    return (day - dt.date(1970, 1, 1)).days


def backfill_days(settings: Settings, until: dt.date | None = None) -> list[dt.date]:
    """Validated days before the newest (or ``until``) that fill the training window."""
    from anomalyops.lake import Lake, Zone

    days = Lake(settings.lake_root).partitions(Zone.VALIDATED)
    if not days:
        return []
    last = until or days[-1]
    first = last - dt.timedelta(days=settings.training.window_days - 1)
    return [d for d in days if first <= d < last]


def metadata_connection_config(settings: Settings) -> metadata_store_pb2.ConnectionConfig:
    """ML Metadata connection: SQLite at ``settings.mlmd_path`` unless a server URL is set.

    ``ANOMALYOPS_TRAINING__METADATA_DB_URL`` takes ``mysql://user:pass@host:3306/db`` or
    ``postgresql://user:pass@host:5432/db`` (both supported by ml-metadata 1.16).
    """
    from ml_metadata.proto import metadata_store_pb2

    secret = settings.training.metadata_db_url
    if secret is None:
        config = metadata_store_pb2.ConnectionConfig()
        config.sqlite.filename_uri = str(settings.mlmd_path)
        config.sqlite.connection_mode = (
            metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        )
        return config
    url = urlparse(secret.get_secret_value())
    database = url.path.lstrip("/")
    if not (url.hostname and database):
        raise ValueError(
            "metadata_db_url needs a host and a database name: scheme://user:pass@host:port/db"
        )
    config = metadata_store_pb2.ConnectionConfig()
    if url.scheme in ("mysql", "mysql+mysqldb"):
        config.mysql.host = url.hostname
        config.mysql.port = url.port or 3306
        config.mysql.database = database
        config.mysql.user = unquote(url.username or "")
        config.mysql.password = unquote(url.password or "")
    elif url.scheme in ("postgresql", "postgres"):
        config.postgresql.host = url.hostname
        config.postgresql.port = str(url.port or 5432)
        config.postgresql.dbname = database
        config.postgresql.user = unquote(url.username or "")
        config.postgresql.password = unquote(url.password or "")
    else:
        raise ValueError(
            f"metadata_db_url scheme {url.scheme!r} is not supported; use mysql:// or postgresql://"
        )
    return config


def _example_gen(settings: Settings, spec: FeatureSpec, span_date: dt.date | None) -> BaseNode:
    from tfx.components import FileBasedExampleGen
    from tfx.dsl.components.base import executor_spec
    from tfx.proto import example_gen_pb2, range_config_pb2

    from anomalyops_tfx.components.lake_example_gen import executor as lake_executor

    eval_buckets = min(
        HASH_BUCKETS - 1, max(1, round(HASH_BUCKETS * settings.training.eval_fraction))
    )
    output_config = example_gen_pb2.Output(
        split_config=example_gen_pb2.SplitConfig(
            splits=[
                example_gen_pb2.SplitConfig.Split(
                    name="train", hash_buckets=HASH_BUCKETS - eval_buckets
                ),
                example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=eval_buckets),
            ],
            # Rows are assigned by their timestamp, so a re-run splits a day identically.
            partition_feature_name=spec.timestamp.column,
        )
    )
    range_config = None
    if span_date is not None:
        span = span_of(span_date)
        range_config = range_config_pb2.RangeConfig(
            static_range=range_config_pb2.StaticRange(start_span_number=span, end_span_number=span)
        )
    return FileBasedExampleGen(
        input_base=settings.lake_root,
        input_config=example_gen_pb2.Input(
            splits=[example_gen_pb2.Input.Split(name="single_split", pattern=SPLIT_PATTERN)]
        ),
        output_config=output_config,
        range_config=range_config,
        custom_executor_spec=executor_spec.BeamExecutorSpec(lake_executor.Executor),
    ).with_id(EXAMPLE_GEN_ID)


def _pipeline(settings: Settings, components: list) -> Pipeline:
    from tfx.orchestration import pipeline as tfx_pipeline

    return tfx_pipeline.Pipeline(
        pipeline_name=settings.pipeline_name,
        pipeline_root=str(settings.pipeline_root),
        components=components,
        enable_cache=settings.training.enable_cache,
        metadata_connection_config=metadata_connection_config(settings),
        beam_pipeline_args=list(settings.beam_args),
    )


def create_pipeline(
    settings: Settings,
    spec: FeatureSpec,
    *,
    schema_path: str | Path | None = None,
    span_date: dt.date | None = None,
) -> Pipeline:
    """The training pipeline.

    ``schema_path`` defaults to :func:`default_schema_path`. ExampleGen ingests the newest
    validated day unless ``span_date`` pins it to one day (backfills, re-runs of a past date).
    """
    from tfx.components import ExampleValidator, StatisticsGen, Trainer, Transform
    from tfx.components.schema_gen.import_schema_gen.component import ImportSchemaGen
    from tfx.dsl.components.common import resolver
    from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import (
        LatestBlessedModelStrategy,
    )
    from tfx.proto import trainer_pb2
    from tfx.types import channel, standard_artifacts

    from anomalyops_tfx.components.evaluation_gate.component import EvaluationGate
    from anomalyops_tfx.components.pusher.component import AtomicPusher
    from anomalyops_tfx.components.regime_window.strategy import RegimeWindowStrategy
    from anomalyops_tfx.components.schema_check.component import SchemaCheck
    from anomalyops_tfx.components.serving_notifier.component import ServingNotifier
    from anomalyops_tfx.trainer import TRAINING_KEY, training_config

    t = settings.training
    spec_config = spec_to_config(spec)
    schema_file = str(schema_path or default_schema_path(settings))

    example_gen = _example_gen(settings, spec, span_date)
    statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = ImportSchemaGen(schema_file=schema_file)
    example_validator = ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    )
    schema_check = SchemaCheck(
        anomalies=example_validator.outputs["anomalies"],
        allowed_anomaly_types=t.allowed_anomaly_types,
    )
    window_config: dict = {"num_spans": t.window_days}
    if t.window_restart_drift_score is not None:  # the IR cannot carry None: absent = never
        window_config["restart_score"] = t.window_restart_drift_score
    if t.window_days_while_drifting is not None:
        window_config["drifting_spans"] = t.window_days_while_drifting
        window_config["persist"] = t.drift_persist_days
    window = resolver.Resolver(
        strategy_class=RegimeWindowStrategy,
        config=window_config,
        # A plain channel (not ExampleGen's output channel): the latter would be limited to
        # this pipeline run's context and so see only today's span.
        examples=channel.Channel(
            type=standard_artifacts.Examples,
            producer_component_id=EXAMPLE_GEN_ID,
            output_key="examples",
        ),
    ).with_id("window_resolver")
    # ...which is why the dependency on ExampleGen has to be stated explicitly.
    window.add_upstream_node(example_gen)
    transform = Transform(
        examples=window.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN,
        custom_config={SPEC_KEY: spec_config},
        materialize=False,
        # Transform's own TFDV pass (pre/post-transform statistics of the whole window) read
        # nobody: each day was validated by the gate, the newest by ExampleValidator. It was
        # most of Transform's time (docs/performance.md).
        disable_statistics=True,
        # Without a cache to write, the window's spans are analysed as one dataset instead of
        # one Beam branch each (nothing fed a previous run's cache back in anyway).
        disable_analyzer_cache=True,
    )
    trainer = Trainer(
        run_fn=RUN_FN,
        examples=window.outputs["examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        train_args=trainer_pb2.TrainArgs(splits=["train"]),
        eval_args=trainer_pb2.EvalArgs(splits=["eval"]),
        custom_config={SPEC_KEY: spec_config, TRAINING_KEY: training_config(settings)},
    ).with_id(TRAINER_ID)
    # Nothing trains on a day the schema check rejected. Transform only analyses, so it need not
    # wait: under Airflow it runs beside StatisticsGen/ExampleValidator on the second core.
    trainer.add_upstream_node(schema_check)
    baseline = resolver.Resolver(
        strategy_class=LatestBlessedModelStrategy,
        model=channel.Channel(
            type=standard_artifacts.Model, producer_component_id=TRAINER_ID, output_key="model"
        ),
        model_blessing=channel.Channel(
            type=standard_artifacts.ModelBlessing,
            producer_component_id=GATE_ID,
            output_key="blessing",
        ),
    ).with_id("latest_blessed_model_resolver")
    gate = EvaluationGate(
        examples=window.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=baseline.outputs["model"],
        baseline_blessing=baseline.outputs["model_blessing"],
        stale_false_alarm_rate=t.stale_false_alarm_rate,
        feature_spec=spec_config,
        threshold_quantile=t.threshold_quantile,
        no_regression_margin=t.no_regression_margin,
        min_eval_rows=t.min_eval_rows,
    ).with_id(GATE_ID)
    pusher = AtomicPusher(
        model=trainer.outputs["model"],
        model_blessing=gate.outputs["blessing"],
        serving_model_dir=str(settings.serving_model_dir),
        feature_spec=spec_config,
    ).with_id("Pusher")
    notifier = ServingNotifier(
        pushed_model=pusher.outputs["pushed_model"],
        api_url=settings.api_url,
        timeout_s=t.notify_timeout_s,
        poll_interval_s=t.notify_poll_interval_s,
    ).with_id("ServingNotifier")

    return _pipeline(
        settings,
        [
            example_gen,
            statistics_gen,
            schema_gen,
            example_validator,
            schema_check,
            window,
            transform,
            trainer,
            baseline,
            gate,
            pusher,
            notifier,
        ],
    )


def create_ingest_pipeline(settings: Settings, spec: FeatureSpec, day: dt.date) -> Pipeline:
    """Only ExampleGen, pinned to ``day``: registers a past day as a span (backfilling the window).

    Same pipeline name and node id as :func:`create_pipeline`, so the window resolver of the
    next training run finds these spans in ML Metadata.
    """
    return _pipeline(settings, [_example_gen(settings, spec, day)])
