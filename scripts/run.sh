#!/usr/bin/env bash
# Set up and run the coaching job on its embedded default: the bundled STAR
# sample in, JSONL files out (./out), a line per suggestion on the terminal.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/bootstrap.sh
exec .venv/bin/python -m bytewax.run flows.coaching:flow "$@"
