#!/usr/bin/env bash
# Run a real single-node Apache Kafka 4.x broker (KRaft, combined
# broker+controller) on loopback from its Maven jars: no Docker, no tarball.
#
#   scripts/kafka/kafka.sh up        start a fresh broker, wait until it answers
#   scripts/kafka/kafka.sh down      stop it (SIGTERM, then SIGKILL after a deadline)
#   scripts/kafka/kafka.sh restart   down + up (always a fresh, empty broker)
#   scripts/kafka/kafka.sh status    exit 0 if running and answering
#   scripts/kafka/kafka.sh logs [tail args]   tail the server log (default -n 100)
#
# `up` prints KAFKA_BROKERS=host:port as its last line and also writes it to
# $KAFKA_RUN_DIR/env. If a broker started by this script with the same
# address is already running and answering, `up` says so and exits 0 leaving
# it (and its topics) as they are; use `restart` to get an empty broker.
#
# Needs: java 17+, mvn (first run only: it downloads ~43 MB of jars into the
# cache), go (for the readiness probe in ./probe; without it the script falls
# back to the log line "Kafka Server started" plus a TCP connect).
#
# Environment (all optional):
#   KAFKA_PORT=19092             client listener on $KAFKA_HOST
#   KAFKA_CONTROLLER_PORT=19093  KRaft controller listener
#   KAFKA_HOST=127.0.0.1
#   KAFKA_CACHE_DIR=<repo>/.cache/kafka/lib   jar cache (kept between runs)
#   KAFKA_RUN_DIR=<repo>/.cache/kafka/run     config, data, logs, pid (wiped by up)
#   KAFKA_START_TIMEOUT=120      seconds for up to see the broker answer
#   KAFKA_STOP_TIMEOUT=30        seconds for down to wait after SIGTERM
#   KAFKA_HEAP_OPTS="-Xms256m -Xmx256m"
#   KAFKA_JVM_OPTS=              extra JVM options (after the script's own)
#   KAFKA_PROBE=auto             auto | go | log  (readiness check)
#   KAFKA_PROBE_BIN=             prebuilt probe binary (default: built with
#                                `go build` into $KAFKA_CACHE_DIR.probe/)
#   JAVA_HOME / KAFKA_JAVA, KAFKA_MVN
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)

KAFKA_HOST=${KAFKA_HOST:-127.0.0.1}
KAFKA_PORT=${KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-19093}
DEFAULT_CACHE_ROOT="$REPO_ROOT/.cache/kafka"
KAFKA_CACHE_DIR=${KAFKA_CACHE_DIR:-$DEFAULT_CACHE_ROOT/lib}
KAFKA_RUN_DIR=${KAFKA_RUN_DIR:-$DEFAULT_CACHE_ROOT/run}
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-120}
KAFKA_STOP_TIMEOUT=${KAFKA_STOP_TIMEOUT:-30}
KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms256m -Xmx256m}
KAFKA_JVM_OPTS=${KAFKA_JVM_OPTS:-}
KAFKA_PROBE=${KAFKA_PROBE:-auto}
KAFKA_PROBE_BIN=${KAFKA_PROBE_BIN:-}
KAFKA_MVN=${KAFKA_MVN:-mvn}
if [[ -n ${KAFKA_JAVA:-} ]]; then
  JAVA=$KAFKA_JAVA
elif [[ -n ${JAVA_HOME:-} && -x $JAVA_HOME/bin/java ]]; then
  JAVA=$JAVA_HOME/bin/java
else
  JAVA=java
fi

# Strip trailing slashes so the paths compare equal in /proc/PID/cmdline.
KAFKA_CACHE_DIR=${KAFKA_CACHE_DIR%/}
KAFKA_RUN_DIR=${KAFKA_RUN_DIR%/}

case $KAFKA_RUN_DIR in
  "" | / | "$HOME" | "$REPO_ROOT" | "$KAFKA_CACHE_DIR")
    printf 'kafka.sh: error: refusing KAFKA_RUN_DIR=%s (up wipes it)\n' "$KAFKA_RUN_DIR" >&2
    exit 1
    ;;
esac

BROKERS="$KAFKA_HOST:$KAFKA_PORT"
MARKER="$KAFKA_CACHE_DIR/.complete"
PID_FILE="$KAFKA_RUN_DIR/kafka.pid"
ENV_FILE="$KAFKA_RUN_DIR/env"
CONFIG="$KAFKA_RUN_DIR/server.properties"
DATA_DIR="$KAFKA_RUN_DIR/data"
LOG_DIR="$KAFKA_RUN_DIR/logs"
SERVER_LOG="$LOG_DIR/server.log"
STDOUT_LOG="$LOG_DIR/stdout.log"
# Built from ./probe, kept beside the jar cache, rebuilt when its inputs change.
PROBE="$KAFKA_CACHE_DIR.probe/kafka-probe"
LOCK_FILE="$KAFKA_RUN_DIR.lock"

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

now_ms() { date +%s%3N; }
secs_since() { # ms start -> "1.234s"
  local d=$(($(now_ms) - $1))
  printf '%d.%03ds' $((d / 1000)) $((d % 1000))
}

# One `up`/`down`/`restart` at a time per run dir.
take_lock() {
  mkdir -p "$(dirname "$LOCK_FILE")"
  exec 9>"$LOCK_FILE"
  if ! flock -w 300 9; then
    die "another kafka.sh holds $LOCK_FILE"
  fi
}

# ---------------------------------------------------------------- jars

pom_hash() { sha256sum "$SCRIPT_DIR/pom.xml" | cut -d' ' -f1; }

jars_cached() {
  [[ -f $MARKER && $(cat "$MARKER") == "$(pom_hash)" ]]
}

ensure_jars() {
  if jars_cached; then
    log "jars: cached in $KAFKA_CACHE_DIR"
    return
  fi
  command -v "$KAFKA_MVN" >/dev/null || die "mvn not found (needed once to download the Kafka jars)"
  local t0 partial mvn_log
  t0=$(now_ms)
  partial="$KAFKA_CACHE_DIR.partial"
  mvn_log="$KAFKA_CACHE_DIR.mvn.log"
  log "jars: downloading Kafka with Maven into $KAFKA_CACHE_DIR ..."
  mkdir -p "$(dirname "$KAFKA_CACHE_DIR")"
  rm -rf "$partial"
  if ! "$KAFKA_MVN" -q -B -Dstyle.color=never -f "$SCRIPT_DIR/pom.xml" \
      org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$partial" >"$mvn_log" 2>&1; then
    tail -n 50 "$mvn_log" >&2 || true
    rm -rf "$partial"
    die "jars: mvn copy-dependencies failed (log: $mvn_log)"
  fi
  [[ -n $(find "$partial" -maxdepth 1 -name 'kafka_2.13-*.jar' -print -quit) ]] ||
    die "jars: no kafka_2.13 jar after mvn (log: $mvn_log)"
  rm -rf "$KAFKA_CACHE_DIR"
  mv "$partial" "$KAFKA_CACHE_DIR"
  # Written only after a complete copy; a pom.xml change invalidates it.
  pom_hash >"$MARKER"
  log "jars: $(find "$KAFKA_CACHE_DIR" -name '*.jar' | wc -l) jars, $(du -sh "$KAFKA_CACHE_DIR" | cut -f1) in $(secs_since "$t0")"
}

# ---------------------------------------------------------------- probe

# Sets PROBE_MODE to go or log.
ensure_probe() {
  PROBE_MODE=log
  case $KAFKA_PROBE in
    log) return ;;
    auto | go) ;;
    *) die "KAFKA_PROBE must be auto, go or log (got $KAFKA_PROBE)" ;;
  esac
  if [[ -n $KAFKA_PROBE_BIN ]]; then
    [[ -x $KAFKA_PROBE_BIN ]] || die "KAFKA_PROBE_BIN=$KAFKA_PROBE_BIN is not executable"
    PROBE=$KAFKA_PROBE_BIN
    PROBE_MODE=go
    return
  fi
  local err stamp
  stamp=$(cat "$SCRIPT_DIR/probe/main.go" "$REPO_ROOT/go.mod" "$REPO_ROOT/go.sum" 2>/dev/null | sha256sum | cut -d' ' -f1)
  if [[ -x $PROBE && -f $PROBE.stamp && $(cat "$PROBE.stamp") == "$stamp" ]]; then
    PROBE_MODE=go
    return
  fi
  mkdir -p "$(dirname "$PROBE")"
  rm -f "$PROBE.stamp"
  if command -v go >/dev/null &&
    err=$(cd "$REPO_ROOT" && go build -o "$PROBE" ./scripts/kafka/probe 2>&1 9>&-); then
    printf '%s\n' "$stamp" >"$PROBE.stamp"
    PROBE_MODE=go
    return
  fi
  [[ $KAFKA_PROBE == go ]] && die "cannot build the readiness probe: ${err:-go not found}"
  log "warning: cannot build scripts/kafka/probe (${err:-go not found}); using the log line + TCP check"
}

tcp_open() { # host port
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# Exit 0 when the broker answers. $1: probe timeout.
broker_answers() {
  if [[ $PROBE_MODE == go ]]; then
    "$PROBE" -brokers "$BROKERS" -timeout "${1:-2s}" -q 2>/dev/null
  else
    grep -q 'Kafka Server started' "$SERVER_LOG" 2>/dev/null && tcp_open "$KAFKA_HOST" "$KAFKA_PORT"
  fi
}

# ---------------------------------------------------------------- process

# Exit 0 if $1 is a live (not zombie) JVM running this run dir's broker.
is_our_kafka() {
  local pid=$1 state cmd
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/stat ]] || return 1
  state=$(sed -e 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [[ $state != Z && $state != X ]] || return 1
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmd == *" kafka.Kafka $CONFIG"* ]]
}

# Exit 0 if $1 is a live (not zombie) process, whatever it runs. Right
# after `nohup java ... &` the child may not have exec'd java yet (its
# cmdline is still this shell's), so startup waits on this, not on
# is_our_kafka.
is_alive() {
  local pid=$1 state
  [[ -r /proc/$pid/stat ]] || return 1
  state=$(sed -e 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [[ $state != Z && $state != X ]]
}

running_pid() { # prints the pid and exits 0 if our broker is running
  local pid
  [[ -f $PID_FILE ]] || return 1
  pid=$(cat "$PID_FILE" 2>/dev/null) || return 1
  is_our_kafka "$pid" || return 1
  printf '%s\n' "$pid"
}

wait_gone() { # pid seconds -> exit 0 once the process is gone
  local pid=$1 deadline=$(($(now_ms) + $2 * 1000))
  while is_our_kafka "$pid"; do
    (($(now_ms) < deadline)) || return 1
    sleep 0.1
  done
}

show_logs() {
  local f
  for f in "$STDOUT_LOG" "$SERVER_LOG"; do
    if [[ -s $f ]]; then
      printf '\n==> last 50 lines of %s <==\n' "$f" >&2
      tail -n 50 "$f" >&2
    fi
  done
}

stop_broker() {
  local pid
  if ! pid=$(running_pid); then
    rm -f "$PID_FILE"
    log "not running"
    return 0
  fi
  local t0
  t0=$(now_ms)
  log "stopping broker (pid $pid) ..."
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_gone "$pid" "$KAFKA_STOP_TIMEOUT"; then
    log "broker did not exit within ${KAFKA_STOP_TIMEOUT}s after SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 10 || die "pid $pid survived SIGKILL"
  fi
  rm -f "$PID_FILE"
  log "stopped in $(secs_since "$t0")"
}

# ---------------------------------------------------------------- config

new_cluster_id() {
  # A Kafka Uuid: 16 random bytes, URL-safe base64 without padding (what
  # `StorageTool random-uuid` prints, without starting a JVM). A leading '-'
  # would read as an option, so draw again.
  local id
  while :; do
    id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
    [[ $id != -* ]] && break
  done
  printf '%s\n' "$id"
}

write_config() {
  sed -e "s|@HOST@|$KAFKA_HOST|g" \
    -e "s|@PORT@|$KAFKA_PORT|g" \
    -e "s|@CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
    -e "s|@DATA_DIR@|$DATA_DIR|g" \
    "$SCRIPT_DIR/server.properties.tmpl" >"$CONFIG"
  if grep -v '^#' "$CONFIG" | grep -q '@[A-Z_]*@'; then
    die "unreplaced placeholder in $CONFIG: $(grep -v '^#' "$CONFIG" | grep -m1 '@[A-Z_]*@')"
  fi
}

# ---------------------------------------------------------------- commands

cmd_up() {
  take_lock
  local t_all pid
  t_all=$(now_ms)

  if pid=$(running_pid); then
    ensure_probe
    if [[ -f $ENV_FILE && $(cat "$ENV_FILE") == "KAFKA_BROKERS=$BROKERS" ]] && broker_answers 5s; then
      log "already running (pid $pid) and answering on $BROKERS; left as it is (use 'restart' for a fresh broker)"
      printf 'KAFKA_BROKERS=%s\n' "$BROKERS"
      return 0
    fi
    log "a broker (pid $pid) runs from $KAFKA_RUN_DIR but does not answer on $BROKERS; restarting it"
    stop_broker
  fi

  local port
  for port in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
    if tcp_open "$KAFKA_HOST" "$port"; then
      die "$KAFKA_HOST:$port is already in use by another process (another broker? try KAFKA_PORT/KAFKA_CONTROLLER_PORT)"
    fi
  done

  command -v "$JAVA" >/dev/null || die "java not found (need Java 17+)"
  ensure_jars

  # A fresh run dir: config, data, logs, tmp.
  rm -rf "$KAFKA_RUN_DIR"
  mkdir -p "$DATA_DIR" "$LOG_DIR" "$KAFKA_RUN_DIR/tmp"
  if [[ $KAFKA_CACHE_DIR == "$DEFAULT_CACHE_ROOT/"* || $KAFKA_RUN_DIR == "$DEFAULT_CACHE_ROOT/"* ]]; then
    # Keep the cache out of git even when the repo's .gitignore misses it.
    [[ -f $DEFAULT_CACHE_ROOT/.gitignore ]] || printf '*\n' >"$DEFAULT_CACHE_ROOT/.gitignore"
  fi
  write_config
  ensure_probe

  local t0 cluster_id
  t0=$(now_ms)
  cluster_id=$(new_cluster_id)
  if ! "$JAVA" -Xmx128m -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    -Dkafka.logs.dir="$LOG_DIR/format" \
    -Dlog4j2.configurationFile="$SCRIPT_DIR/log4j2.properties" \
    -Djava.io.tmpdir="$KAFKA_RUN_DIR/tmp" \
    -cp "$KAFKA_CACHE_DIR/*" kafka.tools.StorageTool format \
    -t "$cluster_id" -c "$CONFIG" >"$LOG_DIR/format.out" 2>&1; then
    cat "$LOG_DIR/format.out" >&2
    die "StorageTool format failed"
  fi
  log "storage formatted (cluster $cluster_id) in $(secs_since "$t0")"

  t0=$(now_ms)
  # -XX:TieredStopAtLevel=1 (C1 JIT only): on 2 cores the broker answers
  # ~1 s sooner and uses ~30 MB less RSS; plenty fast for tests (put
  # -XX:TieredStopAtLevel=4 in KAFKA_JVM_OPTS to get C2 back).
  # 9>&-: the JVM must not inherit the lock fd, or it would hold the lock
  # for as long as it runs.
  # shellcheck disable=SC2086 # word splitting of the option strings is wanted
  nohup "$JAVA" $KAFKA_HEAP_OPTS \
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:TieredStopAtLevel=1 \
    -XX:+ExitOnOutOfMemoryError \
    -Djava.awt.headless=true \
    -Dkafka.logs.dir="$LOG_DIR" \
    -Dlog4j2.configurationFile="$SCRIPT_DIR/log4j2.properties" \
    -Djava.io.tmpdir="$KAFKA_RUN_DIR/tmp" \
    $KAFKA_JVM_OPTS \
    -cp "$KAFKA_CACHE_DIR/*" kafka.Kafka "$CONFIG" \
    >"$STDOUT_LOG" 2>&1 </dev/null 9>&- &
  pid=$!
  printf '%s\n' "$pid" >"$PID_FILE"
  log "started JVM (pid $pid), waiting up to ${KAFKA_START_TIMEOUT}s for $BROKERS to answer ($PROBE_MODE probe) ..."

  local deadline=$((t0 + KAFKA_START_TIMEOUT * 1000))
  while :; do
    if ! is_alive "$pid"; then
      show_logs
      rm -f "$PID_FILE"
      die "the broker JVM (pid $pid) exited during startup"
    fi
    if broker_answers 2s; then
      break
    fi
    if (($(now_ms) >= deadline)); then
      show_logs
      [[ $PROBE_MODE == go ]] && { "$PROBE" -brokers "$BROKERS" -timeout 2s -q || true; }
      stop_broker || true
      die "broker did not answer on $BROKERS within ${KAFKA_START_TIMEOUT}s"
    fi
    sleep 0.2
  done
  printf 'KAFKA_BROKERS=%s\n' "$BROKERS" >"$ENV_FILE"
  log "broker answers on $BROKERS: $(secs_since "$t0") after JVM start, $(secs_since "$t_all") in all (pid $pid, logs $LOG_DIR)"
  printf 'KAFKA_BROKERS=%s\n' "$BROKERS"
}

cmd_down() {
  take_lock
  stop_broker
}

cmd_status() {
  local pid
  if ! pid=$(running_pid); then
    log "not running"
    return 1
  fi
  ensure_probe
  if ! broker_answers 5s; then
    log "running (pid $pid) but not answering on $BROKERS"
    return 1
  fi
  log "running (pid $pid) and answering on $BROKERS"
  printf 'KAFKA_BROKERS=%s\n' "$BROKERS"
}

cmd_logs() {
  [[ -f $SERVER_LOG ]] || die "no server log at $SERVER_LOG"
  if (($# == 0)); then
    set -- -n 100
  fi
  exec tail "$@" "$SERVER_LOG"
}

usage() {
  sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

main() {
  local cmd=${1:-}
  (($#)) && shift
  case $cmd in
    up) cmd_up ;;
    down) cmd_down ;;
    restart) cmd_down && cmd_up ;;
    status) cmd_status ;;
    logs) cmd_logs "$@" ;;
    -h | --help | help) usage ;;
    *)
      usage >&2
      exit 2
      ;;
  esac
}

main "$@"
