#!/usr/bin/env bash
# Create .venv with Python 3.11 and install coachflow with its pinned dependencies.
#   scripts/bootstrap.sh          the job's dependencies
#   scripts/bootstrap.sh dev      plus the test tools
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3.11}"
if ! command -v "$PYTHON" >/dev/null; then echo "bootstrap: $PYTHON not found (Python 3.11 is required)" >&2; exit 1; fi
if [ ! -x .venv/bin/python ]; then "$PYTHON" -m venv .venv; fi
extra=""
[ "${1:-}" = "dev" ] && extra="[dev]"
stamp=".venv/.installed$extra"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ requirements.lock -nt "$stamp" ]; then
  echo "bootstrap: installing coachflow$extra into .venv (pinned by requirements.lock)" >&2
  log=".venv/install.log"
  if ! { .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip &&
         .venv/bin/python -m pip install -q --disable-pip-version-check -c requirements.lock -e ".$extra"; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "bootstrap: pip install failed (log above, also in $log)" >&2
    exit 1
  fi
  touch "$stamp"
fi
