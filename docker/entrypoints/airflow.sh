#!/usr/bin/env bash
# Run an Airflow command with the project's Airflow configuration: `airflow.sh scheduler`,
# `airflow.sh webserver`, `airflow.sh celery worker`, ... The containers' entrypoint and the
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
if [ "$executor" != "SequentialExecutor" ] && [[ "$AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" == sqlite* ]]; then
  echo "airflow.sh: $executor cannot use a SQLite metadata database; set" \
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN to PostgreSQL (or use SequentialExecutor)." >&2
  exit 2
fi

exec airflow "$@"
