#!/usr/bin/env bash
# Install the locked environment into .venv. Idempotent: with nothing changed it takes seconds.
#   ANOMALYOPS_PYTHON=/path/to/python3.10   use this interpreter
#   ANOMALYOPS_EXTRAS="api pipeline"        extras to install (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

say() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

is_py310() { [ -n "$1" ] && "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' >/dev/null 2>&1; }

find_python() {
  local c
  for c in "${ANOMALYOPS_PYTHON:-}" "$(command -v python3.10 || true)" \
           "$HOME"/.pyenv/versions/3.10*/bin/python3.10 /usr/local/bin/python3.10 /usr/bin/python3.10; do
    if is_py310 "$c"; then "$c" -c 'import sys; print(sys.executable)'; return 0; fi
  done
  if command -v uv >/dev/null 2>&1 && c=$(uv python find 3.10 2>/dev/null) && is_py310 "$c"; then
    echo "$c"; return 0
  fi
  return 1
}

find_uv() {
  local c
  for c in "$(command -v uv || true)" "$ROOT/.tools/bin/uv" "$HOME"/.pyenv/versions/*/bin/uv "$HOME/.local/bin/uv"; do
    if [ -n "$c" ] && [ -x "$c" ] && "$c" --version >/dev/null 2>&1; then echo "$c"; return 0; fi
  done
  return 1
}

PY=$(find_python) || {
  cat >&2 <<'MSG'
[setup] No Python 3.10 interpreter found. TFX 1.16's Linux wheels need exactly Python 3.10.
        Install one, then re-run. Any of:
          pyenv install 3.10.13                      (then re-run; .python-version selects it)
          apt-get install python3.10 python3.10-venv (Debian/Ubuntu with 3.10 packaged)
          uv python install 3.10                     (where uv can download interpreters)
        or point ANOMALYOPS_PYTHON at an existing python3.10.
MSG
  exit 1
}

UV=$(find_uv) || {
  say "uv not found; installing it into .tools/ (once)"
  "$PY" -m venv "$ROOT/.tools"
  "$ROOT/.tools/bin/pip" install --quiet --disable-pip-version-check "uv>=0.5,<1"
  UV="$ROOT/.tools/bin/uv"
}

extras=()
for e in ${ANOMALYOPS_EXTRAS:-api pipeline}; do extras+=(--extra "$e"); done

stamp=.venv/.anomalyops-sync
want=$( { cat uv.lock pyproject.toml; echo "$PY ${extras[*]}"; } | sha256sum | cut -c1-16)
if [ -x .venv/bin/python ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0  # nothing changed since the last sync
fi
say "installing the locked environment with $("$UV" --version) and $PY (first time: a few minutes, ~3 GB)"
"$UV" sync --frozen "${extras[@]}" --python "$PY"
echo "$want" > "$stamp"
say "environment ready in .venv"
