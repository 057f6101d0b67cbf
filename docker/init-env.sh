#!/usr/bin/env bash
# Write the compose stack's .env from .env.example, filling every empty secret with a fresh
# random value. Refuses to overwrite an existing file (use --force), so re-running is safe.
#   docker/init-env.sh [--force] [OUTPUT]      (default OUTPUT: .env beside docker-compose.yml)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
force=0
if [ "${1:-}" = "--force" ]; then force=1; shift; fi
out=${1:-$root/.env}
example=$root/.env.example

if [ -e "$out" ] && [ "$force" -ne 1 ]; then
  echo "init-env: $out exists; keeping it (pass --force to replace it and its secrets)" >&2
  exit 0
fi
command -v python3 >/dev/null 2>&1 || { echo "init-env: needs python3 to generate secrets" >&2; exit 1; }

token() { python3 -c 'import secrets; print(secrets.token_urlsafe(32))'; }
fernet_key() { python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())'; }

tmp=$(mktemp "$out.XXXXXX")
trap 'rm -f "$tmp"' EXIT
filled=()
while IFS= read -r line || [ -n "$line" ]; do
  case "$line" in
    AIRFLOW_FERNET_KEY=) line="AIRFLOW_FERNET_KEY=$(fernet_key)" ;;
    POSTGRES_PASSWORD= | AIRFLOW_ADMIN_PASSWORD= | AIRFLOW_WEBSERVER_SECRET_KEY= | \
      ANOMALYOPS_API_KEYS= | ANOMALYOPS_API_ADMIN_KEY= | GRAFANA_ADMIN_PASSWORD=)
      line="$line$(token)" ;;
    *) printf '%s\n' "$line"; continue ;;
  esac
  filled+=("${line%%=*}")
  printf '%s\n' "$line"
done <"$example" >"$tmp"
chmod 600 "$tmp"
mv "$tmp" "$out"
trap - EXIT
echo "init-env: wrote $out with new values for: ${filled[*]}"
