"""
### TFX training (one Airflow task per TFX component)

Runs the TFX pipeline of `anomalyops_tfx.pipeline.create_pipeline` over the recent validated
days: ExampleGen over the lake window, statistics, the imported schema, ExampleValidator and the
schema check, Transform, Trainer, the evaluation gate (blessing), the atomic Pusher and the
serving notifier.

- **Scheduled on the validated-data Dataset** (`x-anomalyops://lake/validated`): one run whenever
  new days were validated. Dataset events that arrive while a run is active are coalesced
  into one next run, so a backfill of many days queues one training over the window, not one
  per day (`max_active_runs=1`, `catchup=False`).
- **register_window_spans** first registers validated days of the window that no run has
  ingested yet (days validated in a burst, whose Dataset events coalesced into this run).
- **Built from the compiled pipeline** (TFX's IR), not from TFX code: parsing this file imports
  no TensorFlow. After changing the pipeline code, feature spec, schema or settings, run
  `anomalyops compile-pipeline`; until then `check_compiled_pipeline` fails each run, naming
  that command (the DAG description says so too).
- **Retries**: the Airflow run id is the TFX pipeline run id, so a retried (or cleared) failed
  task re-runs that component and downstream tasks use its new output. Clearing a task that
  succeeded is a no-op in TFX ("already succeeded"): trigger a new run to rebuild.

See docs/orchestration.md.
"""

from __future__ import annotations

from anomalyops_airflow import alerting, dag_builder, dag_ids, ir, tasks
from anomalyops_airflow.compat import DAG
from anomalyops_airflow.datasets import VALIDATED

settings = dag_builder.dag_settings()
status = ir.project_status(settings)

with DAG(
    dag_id=dag_ids.TRAIN_DAG_ID,
    description="Train, gate and push the anomaly detector (TFX, from the compiled IR)"
    if status.fresh
    else status.message,
    schedule=[VALIDATED],
    start_date=dag_builder.start_date(settings),
    catchup=False,
    max_active_runs=1,
    max_active_tasks=dag_builder.max_active_tasks(settings),
    default_args=dag_builder.default_args(
        settings, on_failure_callback=alerting.on_failure_callback
    ),
    tags=["anomalyops", "training", "tfx"],
    doc_md=__doc__,
) as dag:
    dag_builder.add_pipeline_tasks(
        ir.compiled_pipeline(settings),
        status,
        check_callable=tasks.check_compiled_pipeline,
        node_callable=tasks.run_tfx_node,
        prepare=("register_window_spans", tasks.register_window_spans),
    )
