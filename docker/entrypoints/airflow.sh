#!/usr/bin/env bash
# Run an Airflow command with the project's Airflow configuration: `airflow.sh scheduler`,
# `airflow.sh webserver` (`api-server` on Airflow 3), `airflow.sh celery worker`, ... The containers' entrypoint and the
# tests run this same script. Values already in the environment (the compose file's Postgres
# URL, the executor) win over the embedded defaults printed by `anomalyops airflow-env`.
set -euo pipefail

eval "$(anomalyops airflow-env)"

executor=${AIRFLOW__CORE__EXECUTOR}
if [ "${1:-}" = "celery" ] && [ "${2:-}" = "worker" ] && [ "$executor" != "CeleryExecutor" ]; then
  echo "airflow.sh: a Celery worker needs AIRFLOW__CORE__EXECUTOR=CeleryExecutor (it is" \
    "'$executor'). With docker compose, set AIRFLOW_EXECUTOR=CeleryExecutor next to" \
    "COMPOSE_PROFILES=celery in .env." >&2
  exit 2
fi
# The one executor that runs on SQLite: SequentialExecutor on Airflow 2; Airflow 3 has none
# and runs its LocalExecutor on SQLite (the embedded default there).
sqlite_executor=SequentialExecutor
if [ "$(python -c 'from importlib.metadata import version; print(version("apache-airflow").split(".")[0])')" -ge 3 ]; then
  sqlite_executor=LocalExecutor
fi
if [ "$executor" != "$sqlite_executor" ] && [[ "$AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" == sqlite* ]]; then
  echo "airflow.sh: $executor cannot use a SQLite metadata database; set" \
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN to PostgreSQL (or use $sqlite_executor)." >&2
  exit 2
fi

exec airflow "$@"
