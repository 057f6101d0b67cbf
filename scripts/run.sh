#!/usr/bin/env bash
# Run the whole loop on embedded defaults (SQLite Airflow, local data_lake/, SMTP sink, API).
# Extra args go to `anomalyops demo up` (e.g. --days 14, --detach).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/anomalyops demo up "$@"
