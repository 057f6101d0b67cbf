"""
### Served-traffic check (daily)

Once a day, asks the scoring API what the served model flagged of that day's uploads and
compares the alarm rate with the rate the model was calibrated for (`docs/operations.md`,
Served-traffic monitoring):

- **check_served_traffic** reads `GET /v1/models/active` and `/v1/models/{version}/traffic`
  (`ANOMALYOPS_API_URL`, `ANOMALYOPS_API_ADMIN_KEY`), takes the difference with the previous
  day's record, and writes `monitoring/ds=<day>/traffic.json` in the lake. When the lower end
  of the day's 99 % interval exceeds `ANOMALYOPS_MONITORING__MAX_ALARM_RATIO` times the
  calibrated rate (with at least `ANOMALYOPS_MONITORING__MIN_ROWS` rows), it emails a
  "served traffic drifted" alert. Skipped when no API is configured.
- The API's counters live in its memory: a restarted API starts the day's count afresh.
"""

from __future__ import annotations

from anomalyops_airflow import alerting, compat, dag_builder, dag_ids, tasks
from anomalyops_airflow.compat import DAG, PythonOperator

settings = dag_builder.dag_settings()

with DAG(
    dag_id=dag_ids.MONITOR_DAG_ID,
    description="Compare the served alarm rate with the model's calibrated rate, daily",
    schedule=compat.daily(),
    start_date=dag_builder.start_date(settings),
    catchup=False,
    max_active_runs=1,
    default_args=dag_builder.default_args(
        settings, on_failure_callback=alerting.on_failure_callback
    ),
    tags=["anomalyops", "monitoring"],
    doc_md=__doc__,
) as dag:
    PythonOperator(
        task_id="check_served_traffic",
        python_callable=tasks.check_served_traffic,
        op_kwargs={"ds": "{{ ds }}"},
    )
