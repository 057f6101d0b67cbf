#!/usr/bin/env bash
# One-off set-up before the Airflow services start, safe to re-run (compose runs it on every
# `up`): migrate the metadata DB, create the admin user from the environment, check the
# feature spec and compile the TFX pipeline that the training DAG is built from.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
say() { printf '[airflow-init] %s\n' "$*"; }

eval "$(anomalyops airflow-env)"
: "${AIRFLOW_ADMIN_PASSWORD:?set AIRFLOW_ADMIN_PASSWORD (the Airflow UI admin password)}"

say "migrating the metadata database"
"$here/airflow.sh" db migrate

# The password goes in on stdin, never on a command line (ps): see the script.
"$here/airflow-admin-user.sh"

say "checking the feature spec"
anomalyops check-spec

# The compiled IR lives on the pipeline-root volume; recompile only when code, spec or settings
# changed (the check hashes files; compiling imports TFX, ~30 s).
if anomalyops compile-pipeline --check; then
  say "the compiled TFX pipeline is up to date"
else
  say "compiling the TFX pipeline"
  anomalyops compile-pipeline
fi

say "done"
