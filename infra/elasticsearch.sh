#!/usr/bin/env bash
# A real single-node Elasticsearch on 127.0.0.1 for the Elasticsearch backend and its tests, without Docker.
#
#   bash infra/elasticsearch.sh start    # fetch (once), start, wait for health; prints the ES_URL to export
#   bash infra/elasticsearch.sh status   # URL and cluster health; exit 1 when it is not running
#   bash infra/elasticsearch.sh stop     # stop the server this script started (by its pid file)
#
# The server is Elasticsearch's integ-test zip from Maven Central (see ../shared/reference/elasticsearch.md):
# BM25 and dense_vector/kNN, no bundled JDK. 9.5.0 is the newest 9.x published there; the Python client is
# pinned to 9.5.1, and client and server majors must agree. Elasticsearch refuses to run as root, so it runs
# as the system user `es`. Everything lives under infra/run/elasticsearch/ (git-ignored). Idempotent.
#
# Environment: ES_PORT (9200), ES_VERSION (9.5.0), ES_HEAP (512m), ES_JAVA_HOME (newest JDK >= 21 in
# /usr/lib/jvm), ES_START_TIMEOUT_S (120), ES_RUN_DIR (infra/run/elasticsearch; the user `es` must be able to
# reach it, so move it when the checkout sits in a private home folder).
set -euo pipefail
cd "$(dirname "$0")/.."

ES_VERSION=${ES_VERSION:-9.5.0}
ES_PORT=${ES_PORT:-9200}
ES_HEAP=${ES_HEAP:-512m}
ES_START_TIMEOUT_S=${ES_START_TIMEOUT_S:-120}
ES_USER=es
RUN_DIR=$(realpath -m "${ES_RUN_DIR:-infra/run/elasticsearch}")
ES_HOME="$RUN_DIR/elasticsearch-$ES_VERSION"
PID_FILE="$RUN_DIR/es.pid"
URL="http://127.0.0.1:$ES_PORT"
ARTIFACT="org.elasticsearch.distribution.integ-test-zip:elasticsearch:$ES_VERSION:zip"

say() { echo "elasticsearch: $*" >&2; }

running_pid() {
  # The pid in the pid file, only while that process is alive.
  [ -s "$PID_FILE" ] || return 1
  local pid
  pid=$(cat "$PID_FILE")
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

health() {
  curl -sf --max-time 5 "$URL/_cluster/health?wait_for_status=yellow&timeout=${1:-1}s" 2>/dev/null
}

find_java() {
  # Elasticsearch 9 needs Java 21 or newer; take the newest JDK installed.
  if [ -n "${ES_JAVA_HOME:-}" ]; then echo "$ES_JAVA_HOME"; return; fi
  local jdk major
  for jdk in $(ls -d /usr/lib/jvm/*/ 2>/dev/null | sort -V -r); do
    [ -x "$jdk/bin/java" ] || continue
    major=$("$jdk/bin/java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
    if [ "${major:-0}" -ge 21 ]; then echo "${jdk%/}"; return; fi
  done
  say "no JDK >= 21 under /usr/lib/jvm; install one (e.g. Temurin 25) or set ES_JAVA_HOME"
  exit 1
}

fetch() {
  [ -x "$ES_HOME/bin/elasticsearch" ] && return
  mkdir -p "$RUN_DIR/download"
  say "fetching $ARTIFACT from Maven Central"
  mvn -B -q dependency:copy -Dartifact="$ARTIFACT" -DoutputDirectory="$RUN_DIR/download" >&2
  rm -rf "$ES_HOME.partial"
  mkdir -p "$ES_HOME.partial"
  unzip -q "$RUN_DIR/download/elasticsearch-$ES_VERSION.zip" -d "$ES_HOME.partial"
  chmod +x "$ES_HOME.partial/elasticsearch-$ES_VERSION/bin/"*
  # Unpack beside, then rename: an interrupted fetch never looks like a complete server.
  mv "$ES_HOME.partial/elasticsearch-$ES_VERSION" "$ES_HOME"
  rm -rf "$ES_HOME.partial" "$RUN_DIR/download"
}

prepare_user() {
  id -u "$ES_USER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$ES_USER"
  mkdir -p "$RUN_DIR/data" "$RUN_DIR/logs"
  # The server writes its keystore into config/ and needs its data and log folders.
  chown -R "$ES_USER:" "$ES_HOME" "$RUN_DIR/data" "$RUN_DIR/logs"
  chown "$ES_USER:" "$RUN_DIR"
  if ! runuser -u "$ES_USER" -- test -x "$ES_HOME/bin/elasticsearch"; then
    say "user $ES_USER cannot reach $ES_HOME (a parent folder is private); set ES_RUN_DIR to e.g. /var/tmp/es"
    exit 1
  fi
}

start() {
  if pid=$(running_pid); then
    say "already running (pid $pid) at $URL"
  else
    if curl -s --max-time 2 "$URL" >/dev/null 2>&1; then
      say "port $ES_PORT is taken by a process this script did not start; set ES_PORT to another port"
      exit 1
    fi
    fetch
    prepare_user
    rm -f "$PID_FILE"
    local java_home
    java_home=$(find_java)
    say "starting Elasticsearch $ES_VERSION at $URL (heap $ES_HEAP, java $java_home)"
    # Single node on loopback keeps the bootstrap checks as warnings; the disk threshold is off so a full
    # CI disk does not turn indices read-only mid-test.
    runuser -u "$ES_USER" -- env ES_JAVA_HOME="$java_home" ES_JAVA_OPTS="-Xms$ES_HEAP -Xmx$ES_HEAP" \
      "$ES_HOME/bin/elasticsearch" -d -p "$PID_FILE" \
      -Ediscovery.type=single-node -Enetwork.host=127.0.0.1 -Ehttp.port="$ES_PORT" \
      -Expack.security.enabled=false -Epath.data="$RUN_DIR/data" -Epath.logs="$RUN_DIR/logs" \
      -Ecluster.routing.allocation.disk.threshold_enabled=false \
      >"$RUN_DIR/logs/launcher.log" 2>&1 || {
      say "launch failed; see $RUN_DIR/logs/launcher.log"
      tail -20 "$RUN_DIR/logs/launcher.log" >&2
      exit 1
    }
  fi
  wait_healthy
  echo "export ES_URL=$URL"
}

wait_healthy() {
  local deadline=$((SECONDS + ES_START_TIMEOUT_S))
  until health 5 >/dev/null; do
    # `-d` returns once the daemon has written its pid file, so a missing or dead pid means it exited.
    if ! running_pid >/dev/null; then
      say "the server is not running; last log lines:"
      tail -30 "$RUN_DIR/logs/launcher.log" "$RUN_DIR/logs/elasticsearch.log" 2>/dev/null >&2 || true
      exit 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      say "not healthy after ${ES_START_TIMEOUT_S}s; logs in $RUN_DIR/logs"
      exit 1
    fi
    sleep 1
  done
  say "healthy at $URL"
}

stop() {
  local pid
  if ! pid=$(running_pid); then
    say "not running"
    rm -f "$PID_FILE"
    return
  fi
  say "stopping pid $pid"
  kill "$pid"
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$PID_FILE"; say "stopped"; return; }
    sleep 1
  done
  say "pid $pid still alive after 60 s; sending SIGKILL"
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$PID_FILE"
}

status() {
  local pid body
  if ! pid=$(running_pid); then
    echo "elasticsearch: not running (expected at $URL)"
    return 1
  fi
  if body=$(health 1); then
    echo "elasticsearch: running (pid $pid) at $URL"
    echo "$body"
  else
    echo "elasticsearch: pid $pid alive but $URL does not answer health"
    return 1
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *)
    echo "usage: bash infra/elasticsearch.sh start|stop|status" >&2
    exit 2
    ;;
esac
