#!/usr/bin/env bash
# A single-node Apache Kafka 4 broker (KRaft) on 127.0.0.1, for development and tests.
#
#   scripts/kafka.sh fetch        download the broker's jars from Maven Central (once)
#   scripts/kafka.sh start        fetch, make TLS and users (first time), format, start, apply ACLs
#   scripts/kafka.sh stop         stop it
#   scripts/kafka.sh status       say whether it runs
#   scripts/kafka.sh reset        stop and delete its data (users and ACLs too; keeps the TLS files)
#   scripts/kafka.sh acls         apply the ACLs of coachflow/security.py as the admin principal
#   scripts/kafka.sh env USER     print a principal's client variables: eval "$(scripts/kafka.sh env coaching)"
#
# Two client listeners: PLAINTEXT on KAFKA_PORT (9092; loopback, no authentication) and
# SASL_SSL on KAFKA_SASL_PORT (KAFKA_PORT + 2): SCRAM-SHA-512 users, TLS from a CA the script
# makes, ACLs (docs/security.md). KAFKA_CONTROLLER_PORT (KAFKA_PORT + 1) is the controller's.
# KAFKA_HOME (.kafka in the checkout) holds jars, data, logs and, owner only, secrets-PORT
# (CA, broker key, users' passwords and client properties). Needs Java 17+, Maven, openssl.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HERE="$ROOT/scripts/kafka"
KAFKA_HOME="${KAFKA_HOME:-$ROOT/.kafka}"
PORT="${KAFKA_PORT:-9092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((PORT + 1))}"
SASL_PORT="${KAFKA_SASL_PORT:-$((PORT + 2))}"
LIB="$KAFKA_HOME/lib"
DATA="$KAFKA_HOME/data-$PORT"
LOGS="$KAFKA_HOME/logs-$PORT"
SECRETS="$KAFKA_HOME/secrets-$PORT"
PIDFILE="$KAFKA_HOME/broker-$PORT.pid"
CONFIG="$KAFKA_HOME/server-$PORT.properties"
READY_TIMEOUT="${KAFKA_READY_TIMEOUT:-90}"
COACH="${COACH:-$ROOT/.venv/bin/coach}"
PRINCIPALS=""

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
  (exec 3<>"/dev/tcp/127.0.0.1/${1:-$PORT}") 2>/dev/null
}

java_run() {
  java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$HERE/log4j2.properties" -Dkafka.logs.dir="$LOGS" \
    -cp "$LIB/*" "$@"
}

# The principals of coachflow/security.py's table, admin first (none without the project's .venv).
principals() {
  if [ -z "$PRINCIPALS" ] && [ -x "$COACH" ]; then PRINCIPALS="$("$COACH" acls principals)"; fi
  if [ -n "$PRINCIPALS" ]; then echo "$PRINCIPALS"; fi
}

# A CA and a broker certificate for 127.0.0.1 and localhost, made once; the broker's PEM key store.
tls() {
  if [ -f "$SECRETS/broker.pem" ]; then return; fi
  say "making a development CA and the broker's TLS certificate in $SECRETS"
  local tmp; tmp="$(mktemp -d)"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 \
    -subj "/CN=coachflow development CA ($PORT)" -keyout "$SECRETS/ca.key" -out "$SECRETS/ca.pem" 2>/dev/null
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/broker.key"
  openssl req -new -key "$tmp/broker.key" -subj "/CN=127.0.0.1" -out "$tmp/broker.csr"
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' \
    > "$tmp/ext"
  openssl x509 -req -in "$tmp/broker.csr" -CA "$SECRETS/ca.pem" -CAkey "$SECRETS/ca.key" -CAcreateserial \
    -CAserial "$tmp/ca.srl" -days 825 -extfile "$tmp/ext" -out "$tmp/broker.crt" 2>/dev/null
  cat "$tmp/broker.key" "$tmp/broker.crt" "$SECRETS/ca.pem" > "$SECRETS/broker.pem"
  rm -rf "$tmp"
}

# Per principal: a random password and a librdkafka properties file for its clients, made once.
users() {
  local user
  for user in $(principals); do
    if [ ! -f "$SECRETS/$user.password" ]; then
      openssl rand -hex 24 > "$SECRETS/$user.password"
    fi
    if [ ! -f "$SECRETS/$user.properties" ]; then
      {
        echo "# librdkafka properties of principal $user on 127.0.0.1:$SASL_PORT (scripts/kafka.sh): secret"
        echo "security.protocol=SASL_SSL"
        echo "sasl.mechanism=SCRAM-SHA-512"
        echo "sasl.username=$user"
        echo "sasl.password=$(cat "$SECRETS/$user.password")"
        echo "ssl.ca.location=$SECRETS/ca.pem"
      } > "$SECRETS/$user.properties"
    fi
  done
}

# `--add-scram` arguments for every principal: their SCRAM-SHA-512 credentials in the new storage.
scram_args() {
  local user
  for user in $(principals); do
    printf '%s\n' "--add-scram" "SCRAM-SHA-512=[name=$user,password=$(cat "$SECRETS/$user.password")]"
  done
}

start() {
  fetch
  if running; then say "already running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"; return; fi
  local port
  for port in "$PORT" "$SASL_PORT" "$CONTROLLER_PORT"; do
    if port_open "$port"; then say "port $port is taken by another process"; exit 1; fi
  done
  # The topics' data are personal data: the broker's directories are its user's only.
  mkdir -p "$DATA" "$LOGS"
  chmod 700 "$DATA" "$LOGS"
  (umask 077; mkdir -p "$SECRETS"; tls; users)
  sed -e "s#@PORT@#$PORT#g" -e "s#@CONTROLLER_PORT@#$CONTROLLER_PORT#g" -e "s#@SASL_PORT@#$SASL_PORT#g" \
    -e "s#@DATA_DIR@#$DATA#g" -e "s#@SECRETS@#$SECRETS#g" "$HERE/server.properties.in" > "$CONFIG"
  if [ ! -f "$DATA/meta.properties" ]; then
    local cluster_id scram=()
    cluster_id="$(java_run kafka.tools.StorageTool random-uuid)"
    mapfile -t scram < <(scram_args)
    java_run kafka.tools.StorageTool format --standalone -t "$cluster_id" -c "$CONFIG" "${scram[@]}" >/dev/null
    if [ "${#scram[@]}" -gt 0 ]; then principals > "$DATA/.scram-users"; fi
  fi
  say "starting broker on 127.0.0.1:$PORT, SASL_SSL on 127.0.0.1:$SASL_PORT (logs: $LOGS/server.log)"
  nohup java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$HERE/log4j2.properties" -Dkafka.logs.dir="$LOGS" \
    -cp "$LIB/*" kafka.Kafka "$CONFIG" >"$LOGS/stdout.log" 2>&1 &
  echo $! > "$PIDFILE"
  local waited=0
  until port_open && port_open "$SASL_PORT" && grep -q "Kafka Server started" "$LOGS/server.log" 2>/dev/null; do
    if ! running; then say "broker exited; see $LOGS"; tail -n 30 "$LOGS/stdout.log" >&2 || true; exit 1; fi
    if [ "$waited" -ge "$READY_TIMEOUT" ]; then say "not ready after ${READY_TIMEOUT}s"; stop; exit 1; fi
    sleep 1; waited=$((waited + 1))
  done
  say "ready on 127.0.0.1:$PORT after ${waited}s"
  acls
}

# Users the storage lacks (formatted before they were in the table) are added over the loopback
# PLAINTEXT listener, whose principal is a super user; then the admin principal applies the ACLs.
acls() {
  if [ ! -x "$COACH" ]; then
    say "no $COACH: no SCRAM users or ACLs yet (scripts/bootstrap.sh, then scripts/kafka.sh acls)"
    return
  fi
  if [ "$(principals)" != "$(cat "$DATA/.scram-users" 2>/dev/null)" ]; then
    (umask 077; users)
    "$COACH" acls users --brokers "127.0.0.1:$PORT" --secrets "$SECRETS"
    principals > "$DATA/.scram-users"
  fi
  env -u COACH_KAFKA_CONFIG -u COACH_KAFKA_PASSWORD -u COACH_KAFKA_PASSWORD_FILE \
    COACH_BROKERS="127.0.0.1:$SASL_PORT" COACH_KAFKA_CONFIG_FILE="$SECRETS/admin.properties" "$COACH" acls apply
}

client_env() {
  local user="${1:?usage: scripts/kafka.sh env USER}"
  if [ ! -f "$SECRETS/$user.properties" ]; then say "no principal $user (see coach acls show)"; exit 1; fi
  echo "export COACH_BROKERS=127.0.0.1:$SASL_PORT"
  echo "export COACH_KAFKA_CONFIG_FILE=$SECRETS/$user.properties"
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
  acls) acls ;;
  env) client_env "${2:-}" ;;
  *) sed -n '2,17p' "$0"; exit 2 ;;
esac
