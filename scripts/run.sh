#!/usr/bin/env bash
# Run the system on embedded defaults: SQLite Airflow, the local data_lake/, this machine only.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
say() { printf '\033[1m[run]\033[0m %s\n' "$*"; }

eval "$(.venv/bin/anomalyops airflow-env)"
export PATH="$ROOT/.venv/bin:$PATH"
DAYS=${ANOMALYOPS_DEMO_DAYS:-14}
export ANOMALYOPS_START_DATE=${ANOMALYOPS_START_DATE:-$(date -u -d "$DAYS days ago" +%F)}
END=$(date -u -d "yesterday" +%F)

mkdir -p "$AIRFLOW_HOME"
say "Airflow metadata DB: $AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"
airflow db migrate >"$AIRFLOW_HOME/db-migrate.log" 2>&1 || { cat "$AIRFLOW_HOME/db-migrate.log"; exit 1; }

say "ingesting $ANOMALYOPS_START_DATE .. $END through the anomalyops_ingest DAG (backfill)"
airflow dags backfill anomalyops_ingest -s "$ANOMALYOPS_START_DATE" -e "$END" --reset-dagruns -y \
  >"$AIRFLOW_HOME/backfill.log" 2>&1 || { tail -50 "$AIRFLOW_HOME/backfill.log"; exit 1; }

LAKE=$(python -c 'from anomalyops.settings import get_settings; print(get_settings().lake_root)')
say "done. The lake is at $LAKE:"
find "$LAKE" -maxdepth 2 -name 'ds=*' | sort | sed 's/^/    /'
say "task logs: $AIRFLOW_HOME/logs"
