#!/usr/bin/env bash
# Lint, then every test room (unit, dags, integration, e2e). Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest "$@"
