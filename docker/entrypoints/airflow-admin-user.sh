#!/usr/bin/env bash
# Create the Airflow UI admin user from the environment if it does not exist yet.
# The password is handed to `airflow users create` on stdin (it asks twice), never as an
# argument: every user of the host can read any process's arguments (`ps`, /proc/*/cmdline).
# setsid leaves no controlling terminal, so Airflow's getpass reads stdin, not /dev/tty; the
# child does not even inherit the variable.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
say() { printf '[airflow-init] %s\n' "$*"; }

: "${AIRFLOW_ADMIN_USERNAME:=admin}"
: "${AIRFLOW_ADMIN_EMAIL:=admin@localhost}"
: "${AIRFLOW_ADMIN_PASSWORD:?set AIRFLOW_ADMIN_PASSWORD (the Airflow UI admin password)}"

if "$here/airflow.sh" users list --output plain | awk 'NR > 1 {print $2}' | grep -qxF "$AIRFLOW_ADMIN_USERNAME"; then
  say "admin user '$AIRFLOW_ADMIN_USERNAME' exists"
else
  say "creating admin user '$AIRFLOW_ADMIN_USERNAME'"
  # printf is a shell builtin: the password is in no process's argument list.
  printf '%s\n%s\n' "$AIRFLOW_ADMIN_PASSWORD" "$AIRFLOW_ADMIN_PASSWORD" |
    setsid -w env -u AIRFLOW_ADMIN_PASSWORD "$here/airflow.sh" users create --role Admin \
      --username "$AIRFLOW_ADMIN_USERNAME" --email "$AIRFLOW_ADMIN_EMAIL" \
      --firstname Airflow --lastname Admin
fi
