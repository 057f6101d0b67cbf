"""
### Daily ingestion

Every day (catch-up on, so a backfill over a date range works):

1. **land** - the day's source data arrives in `landing/<YYYY-MM-DD>/` (the demo simulator
   writes a file there; in production users or a feed drop CSV/Parquet files).
2. **ingest** - the files are checked against the feature spec and written atomically to
   `raw/ds=<YYYY-MM-DD>/`. Unreadable files (missing columns, unparsable values, empty file)
   fail the task with the file, column and row named, and are copied to `quarantine/`.

Tasks read the logical date (`ds`) from Airflow. Re-running a day replaces its partitions.
"""

from __future__ import annotations

import datetime as dt

from airflow import DAG
from airflow.operators.python import PythonOperator

from anomalyops import tasks
from anomalyops.settings import get_settings

settings = get_settings()

with DAG(
    dag_id="anomalyops_ingest",
    description="Land and ingest one day of data into the lake",
    schedule="@daily",
    start_date=dt.datetime.combine(settings.start_date, dt.time(), tzinfo=dt.timezone.utc),
    catchup=True,
    max_active_runs=4,
    default_args={
        "owner": "anomalyops",
        "retries": 2,
        "retry_delay": dt.timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "max_retry_delay": dt.timedelta(minutes=10),
    },
    tags=["anomalyops", "ingestion"],
    doc_md=__doc__,
) as dag:
    land = PythonOperator(task_id="land", python_callable=tasks.land, op_kwargs={"ds": "{{ ds }}"})
    ingest = PythonOperator(
        task_id="ingest", python_callable=tasks.ingest, op_kwargs={"ds": "{{ ds }}"}
    )
    land >> ingest
