"""
### Daily ingestion

Every day (catch-up on, so a backfill over a date range works):

1. **land** - the day's source data arrives in `landing/<YYYY-MM-DD>/`. The demo simulator
   writes a file there; in production users or a feed drop CSV/Parquet files, and the task
   waits (deferred, in the triggerer) until the day is complete: a `_READY` marker, or no
   change for a quiet period. Past the deadline (`ANOMALYOPS_LANDING__DEADLINE_H` after the
   day's end) it emails a "data late" alert and fails.
2. **ingest** - the files are checked against the feature spec and written atomically to
   `raw/ds=<YYYY-MM-DD>/`. Unreadable files (missing columns, unparsable values, empty file)
   fail the task with the file, column and row named, and are copied to `quarantine/`.
3. **validate** - the data-quality gate: Great Expectations (suite generated from the feature
   spec + curated additions; updates Data Docs) and TFDV (curated schema; drift against the
   previous validated day). Writes `reports/ds=<YYYY-MM-DD>/gate.json`; moves no data.
4. **decide** - branches on the recorded decision:
   - **promote** (pass, or valid but drifted under the `warn` policy) copies the day to
     `validated/` and updates the `x-anomalyops://lake/validated` Dataset, which triggers
     training; **notify_drift** then emails drift warnings (skipped when there are none).
   - **quarantine** (invalid data, or drift under the `block` policy) moves the day to
     `quarantine/` with `reason.json`, emails the alert and fails the run. Nothing trains on it;
     `anomalyops readmit <YYYY-MM-DD>` re-admits it after a fix.

Any failed task emails an alert with its log location (`anomalyops_airflow.alerting`). Tasks read the
logical date (`ds`) from Airflow. Re-running a day replaces its partitions and report.
See docs/validation.md.
"""

from __future__ import annotations

from anomalyops_airflow import alerting, compat, dag_builder, dag_ids, tasks
from anomalyops_airflow.compat import DAG, BranchPythonOperator, PythonOperator
from anomalyops_airflow.datasets import VALIDATED
from anomalyops_airflow.landing import LandingSensor

settings = dag_builder.dag_settings()

with DAG(
    dag_id=dag_ids.INGEST_DAG_ID,
    description="Land and ingest one day of data into the lake",
    schedule=compat.daily(),
    start_date=dag_builder.start_date(settings),
    catchup=True,
    # One day at a time: each day's drift check compares with the previous validated day.
    max_active_runs=1,
    default_args=dag_builder.default_args(
        settings, on_failure_callback=alerting.on_failure_callback
    ),
    tags=["anomalyops", "ingestion"],
    doc_md=__doc__,
) as dag:
    land = LandingSensor(task_id="land")
    ingest = PythonOperator(
        task_id="ingest", python_callable=tasks.ingest, op_kwargs={"ds": "{{ ds }}"}
    )
    validate = PythonOperator(
        task_id="validate", python_callable=tasks.validate, op_kwargs={"ds": "{{ ds }}"}
    )
    decide = BranchPythonOperator(
        task_id="decide", python_callable=tasks.branch_on_verdict, op_kwargs={"ds": "{{ ds }}"}
    )
    promote = PythonOperator(
        task_id="promote",
        python_callable=tasks.promote,
        op_kwargs={"ds": "{{ ds }}"},
        outlets=[VALIDATED],
    )
    notify_drift = PythonOperator(
        task_id="notify_drift", python_callable=tasks.notify_drift, op_kwargs={"ds": "{{ ds }}"}
    )
    quarantine = PythonOperator(
        task_id="quarantine", python_callable=tasks.quarantine, op_kwargs={"ds": "{{ ds }}"}
    )
    land >> ingest >> validate >> decide >> [promote, quarantine]
    promote >> notify_drift
