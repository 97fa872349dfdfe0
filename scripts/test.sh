#!/usr/bin/env bash
# Set up and run the whole test suite: unit tests and the integration tests on
# a real Apache Kafka broker that this script fetches (Maven Central) and starts.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/bootstrap.sh dev
# The agent console's end-to-end test drives Debian's headless Chromium.
scripts/chromium.sh
export KAFKA_PORT="${KAFKA_PORT:-9092}"
started=""
if ! scripts/kafka.sh status >/dev/null 2>&1; then
  scripts/kafka.sh start
  started=1
fi
cleanup() { if [ -n "$started" ]; then scripts/kafka.sh stop; fi; }
trap cleanup EXIT
# The Kafka tests fail (never skip) when COACH_TEST_BROKERS is set and unreachable; so do the
# secured ones when the same broker's SASL_SSL listener is (tests/integration/test_kafka_secured.py).
export COACH_TEST_BROKERS="127.0.0.1:$KAFKA_PORT"
export COACH_TEST_SASL_BROKERS="127.0.0.1:${KAFKA_SASL_PORT:-$((KAFKA_PORT + 2))}"
export COACH_TEST_KAFKA_SECRETS="${KAFKA_HOME:-$ROOT/.kafka}/secrets-$KAFKA_PORT"
.venv/bin/ruff check .
# Types of schemas/, operators/, flows/, lineage/ and what they import ([tool.mypy] in pyproject.toml).
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
