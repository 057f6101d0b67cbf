#!/usr/bin/env bash
# One-off set-up before the Airflow services start, safe to re-run (compose runs it on every
# `up`): migrate the metadata DB, create the admin user from the environment, check the
# feature spec and compile the TFX pipeline that the training DAG is built from.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
say() { printf '[airflow-init] %s\n' "$*"; }

eval "$(anomalyops airflow-env)"
: "${AIRFLOW_ADMIN_USERNAME:=admin}"
: "${AIRFLOW_ADMIN_EMAIL:=admin@localhost}"
: "${AIRFLOW_ADMIN_PASSWORD:?set AIRFLOW_ADMIN_PASSWORD (the Airflow UI admin password)}"

say "migrating the metadata database"
"$here/airflow.sh" db migrate

if "$here/airflow.sh" users list --output plain | awk 'NR > 1 {print $2}' | grep -qxF "$AIRFLOW_ADMIN_USERNAME"; then
  say "admin user '$AIRFLOW_ADMIN_USERNAME' exists"
else
  say "creating admin user '$AIRFLOW_ADMIN_USERNAME'"
  "$here/airflow.sh" users create --role Admin --username "$AIRFLOW_ADMIN_USERNAME" \
    --password "$AIRFLOW_ADMIN_PASSWORD" --email "$AIRFLOW_ADMIN_EMAIL" \
    --firstname Airflow --lastname Admin
fi

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
