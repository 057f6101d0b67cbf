#!/usr/bin/env bash
# Start the scoring API: the API container's entrypoint, and what the tests start directly.
# Service settings come from ANOMALYOPS_API_* (see anomalyops_api.settings); the bind address
# from UVICORN_HOST/UVICORN_PORT. One process: the model registry and job queue live in it.
set -euo pipefail

exec uvicorn anomalyops_api.main:create_app --factory \
  --host "${UVICORN_HOST:-0.0.0.0}" --port "${UVICORN_PORT:-8000}" \
  --no-server-header --timeout-graceful-shutdown 30 "$@"
