#!/usr/bin/env bash
# Create the job's Bytewax recovery partitions once; safe to run before every start.
#
#   scripts/recovery-init.sh DIR [PARTITIONS]     (PARTITIONS: 1 by default)
#
# then run the job on them, e.g. snapshots every 5 s and no external backups:
#
#   COACH_BROKERS=127.0.0.1:9092 .venv/bin/python -m bytewax.run -r DIR -s 5 -b 0 flows.coaching:flow
#
# Bytewax's own `python -m bytewax.recovery DIR N` needs DIR to exist and fails
# on a directory it already initialised; this script creates DIR and leaves
# existing partitions (the state a restart resumes from) alone. The partition
# count is fixed once created: delete DIR to start over from no state.
#
# The partitions hold the job's state (held turns, customer context, windows),
# personal data: DIR is created with mode 0700 and the partitions 0600 (SQLite
# gives its journal files the same mode); existing partitions are set to 0600.
set -euo pipefail
umask 077

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
DIR="${1:?usage: scripts/recovery-init.sh DIR [PARTITIONS]}"
PARTS="${2:-1}"

if compgen -G "$DIR/part-*.sqlite3" >/dev/null; then
  chmod go-rwx "$DIR"/part-*.sqlite3*
  echo "recovery: $DIR already holds $(ls "$DIR"/part-*.sqlite3 | wc -l) partition(s); keeping them" >&2
  exit 0
fi
mkdir -p "$DIR"
"$PYTHON" -m bytewax.recovery "$DIR" "$PARTS"
echo "recovery: created $PARTS partition(s) in $DIR" >&2
