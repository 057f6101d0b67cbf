#!/usr/bin/env bash
# Lint, then every test room (unit, dags, integration, e2e, security). Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# Dependency directions (pyproject.toml [tool.importlinter]): a broken contract names the import.
.venv/bin/lint-imports --no-cache
if [ "$#" -gt 0 ]; then
  exec .venv/bin/python -m pytest "$@"
fi
# The security room starts real servers with tight time bounds (hostile uploads answered within
# 5 s): it runs in a fresh interpreter after the rest, so those bounds measure the server and
# not whatever the other rooms left running.
status=0
.venv/bin/python -m pytest --ignore=tests/security || status=$?
.venv/bin/python -m pytest tests/security || status=$?
exit "$status"
