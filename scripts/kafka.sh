#!/usr/bin/env bash
# A single-node Apache Kafka 4 broker (KRaft) on 127.0.0.1, for development and tests.
#
#   scripts/kafka.sh fetch     download the broker's jars from Maven Central (once)
#   scripts/kafka.sh start     fetch, format storage (first time) and start; waits until ready
#   scripts/kafka.sh stop      stop it
#   scripts/kafka.sh status    say whether it runs
#   scripts/kafka.sh reset     stop and delete its data
#
# KAFKA_PORT (9092) and KAFKA_CONTROLLER_PORT (9093) choose the ports; KAFKA_HOME
# (.kafka in the checkout) holds jars, data and logs. Needs Java 17+ and Maven.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HERE="$ROOT/scripts/kafka"
KAFKA_HOME="${KAFKA_HOME:-$ROOT/.kafka}"
PORT="${KAFKA_PORT:-9092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
LIB="$KAFKA_HOME/lib"
DATA="$KAFKA_HOME/data-$PORT"
LOGS="$KAFKA_HOME/logs-$PORT"
PIDFILE="$KAFKA_HOME/broker-$PORT.pid"
CONFIG="$KAFKA_HOME/server-$PORT.properties"
READY_TIMEOUT="${KAFKA_READY_TIMEOUT:-90}"

say() { echo "kafka: $*" >&2; }

fetch() {
  if [ -f "$LIB/.complete" ]; then return; fi
  say "fetching Apache Kafka jars from Maven Central into $LIB"
  mkdir -p "$LIB"
  mvn -q -B -Dstyle.color=never -f "$HERE/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$LIB" -DincludeScope=runtime
  ls "$LIB"/kafka_2.13-*.jar >/dev/null
  touch "$LIB/.complete"
}

running() {
  [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null
}

java_run() {
  java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$HERE/log4j2.properties" -Dkafka.logs.dir="$LOGS" \
    -cp "$LIB/*" "$@"
}

start() {
  fetch
  if running; then say "already running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"; return; fi
  if port_open; then say "port $PORT is taken by another process"; exit 1; fi
  mkdir -p "$DATA" "$LOGS"
  sed -e "s#@PORT@#$PORT#g" -e "s#@CONTROLLER_PORT@#$CONTROLLER_PORT#g" -e "s#@DATA_DIR@#$DATA#g" \
    "$HERE/server.properties.in" > "$CONFIG"
  if [ ! -f "$DATA/meta.properties" ]; then
    local cluster_id
    cluster_id="$(java_run kafka.tools.StorageTool random-uuid)"
    java_run kafka.tools.StorageTool format --standalone -t "$cluster_id" -c "$CONFIG" >/dev/null
  fi
  say "starting broker on 127.0.0.1:$PORT (logs: $LOGS/server.log)"
  nohup java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$HERE/log4j2.properties" -Dkafka.logs.dir="$LOGS" \
    -cp "$LIB/*" kafka.Kafka "$CONFIG" >"$LOGS/stdout.log" 2>&1 &
  echo $! > "$PIDFILE"
  local waited=0
  until port_open && grep -q "Kafka Server started" "$LOGS/server.log" 2>/dev/null; do
    if ! running; then say "broker exited; see $LOGS"; tail -n 30 "$LOGS/stdout.log" >&2 || true; exit 1; fi
    if [ "$waited" -ge "$READY_TIMEOUT" ]; then say "not ready after ${READY_TIMEOUT}s"; stop; exit 1; fi
    sleep 1; waited=$((waited + 1))
  done
  say "ready on 127.0.0.1:$PORT after ${waited}s"
}

stop() {
  if ! running; then rm -f "$PIDFILE"; say "not running"; return; fi
  local pid; pid="$(cat "$PIDFILE")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$PIDFILE"
  say "stopped"
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  status) if running; then echo "running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"; else echo "stopped"; exit 3; fi ;;
  reset) stop; rm -rf "$DATA" "$LOGS" ;;
  *) sed -n '2,12p' "$0"; exit 2 ;;
esac
