#!/usr/bin/env bash
# The local services, in the background, without Docker (infra/docker-compose.yml is the Docker version):
#
#   bash infra/services.sh start [--with-elasticsearch]   # Prefect server, MLflow server, a Prefect worker
#   bash infra/services.sh status [--with-elasticsearch]  # URLs and health; exit 1 if one is down
#   bash infra/services.sh stop [--with-elasticsearch]    # stop what this script started (by pid file)
#   bash infra/services.sh deploy                         # register prefect.yaml's deployments
#   source infra/run/services.env                         # PREFECT_API_URL and MLFLOW_TRACKING_URI
#
# Prefect server on 127.0.0.1:4200 (its database in infra/run/prefect/), MLflow server on 127.0.0.1:5000
# serving the project's own store, the one `bash infra/pipeline.sh` and `dvc repro` log to without a server
# (mlruns.db, artifacts in mlartifacts/, so the UI shows the runs the pipeline logged; light settings: one
# worker, no job execution, about 380 MiB instead of 2.2 GiB), and a
# process worker for the work pool `rezero-local` of prefect.yaml, which runs the deployments' flow runs in
# this folder. Pid files and logs: infra/run/ (git-ignored). Elasticsearch: infra/elasticsearch.sh.
#
# Environment: PREFECT_PORT (4200), MLFLOW_PORT (5000), SERVICES_START_TIMEOUT_S (120),
# SERVICES_STOP_GRACE_S (15), VENV (.venv).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

RUN_DIR="$ROOT/infra/run"
# The ports of a running `start` are remembered, so status/stop/deploy find the servers without the variables.
if [ -f "$RUN_DIR/ports.env" ]; then
  # shellcheck source=/dev/null
  source "$RUN_DIR/ports.env"
fi
PREFECT_PORT=${PREFECT_PORT:-${STARTED_PREFECT_PORT:-4200}}
MLFLOW_PORT=${MLFLOW_PORT:-${STARTED_MLFLOW_PORT:-5000}}
TIMEOUT_S=${SERVICES_START_TIMEOUT_S:-120}
STOP_GRACE_S=${SERVICES_STOP_GRACE_S:-15}
VENV=${VENV:-.venv}
POOL=rezero-local
PREFECT_URL="http://127.0.0.1:$PREFECT_PORT"
MLFLOW_URL="http://127.0.0.1:$MLFLOW_PORT"
SERVICES=(prefect-server mlflow-server prefect-worker)

say() { echo "services: $*" >&2; }

health_url() {
  case "$1" in
    prefect-server) echo "$PREFECT_URL/api/health" ;;
    mlflow-server) echo "$MLFLOW_URL/health" ;;
    prefect-worker) echo "" ;;
  esac
}

running_pid() {
  # The pid in the service's pid file, only while that process is alive.
  local file="$RUN_DIR/$1.pid" pid
  [ -s "$file" ] || return 1
  pid=$(cat "$file")
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

healthy() {
  local url
  url=$(health_url "$1")
  if [ -z "$url" ]; then
    # The worker has no endpoint: alive and past its start-up line.
    running_pid "$1" >/dev/null && grep -q "started" "$RUN_DIR/$1.log" 2>/dev/null
  else
    curl -sf --max-time 5 "$url" >/dev/null 2>&1
  fi
}

port_taken() {
  # A server of ours that is not running, whose port something else already answers on.
  local name=$1 url
  url=$(health_url "$name")
  running_pid "$name" >/dev/null && return 1
  curl -s --max-time 2 -o /dev/null "${url%/*}" 2>/dev/null
}

launch() {
  # launch NAME COMMAND...: start in its own session (so stop can end its children too), log, pid file.
  local name=$1 pid
  shift
  if pid=$(running_pid "$name"); then
    say "$name already running (pid $pid)"
    return
  fi
  setsid "$@" >"$RUN_DIR/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN_DIR/$name.pid"
  say "$name started (pid $!), log $RUN_DIR/$name.log"
}

wait_healthy() {
  local name=$1 deadline=$((SECONDS + TIMEOUT_S))
  until healthy "$name"; do
    if ! running_pid "$name" >/dev/null; then
      say "$name exited; last log lines:"
      tail -25 "$RUN_DIR/$name.log" >&2 || true
      exit 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      say "$name not healthy after ${TIMEOUT_S}s; stopping it. Last log lines:"
      tail -25 "$RUN_DIR/$name.log" >&2 || true
      stop_one "$name"
      exit 1
    fi
    sleep 1
  done
  say "$name healthy"
}

start() {
  local name
  for name in prefect-server mlflow-server; do
    if port_taken "$name"; then
      say "$name: $(health_url "$name" | sed 's|/[a-z]*/*[a-z]*$||') already answers, but not a server this script" \
        "started; stop that process or choose another port (PREFECT_PORT, MLFLOW_PORT)"
      exit 1
    fi
  done
  mkdir -p "$RUN_DIR/prefect" "$ROOT/mlartifacts"
  printf 'STARTED_PREFECT_PORT=%s\nSTARTED_MLFLOW_PORT=%s\n' "$PREFECT_PORT" "$MLFLOW_PORT" >"$RUN_DIR/ports.env"
  # shellcheck source=infra/env.sh
  source infra/env.sh  # offline, no telemetry, the venv first on PATH (inherited by the worker's flow runs)
  # The UI asks the API at PREFECT_UI_API_URL, which would otherwise stay on port 4200.
  launch prefect-server env -u PREFECT_API_URL PREFECT_HOME="$RUN_DIR/prefect" \
    PREFECT_UI_API_URL="$PREFECT_URL/api" PREFECT_UI_URL="$PREFECT_URL" \
    "$VENV/bin/prefect" server start --host 127.0.0.1 --port "$PREFECT_PORT"
  launch mlflow-server env MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false \
    "$VENV/bin/mlflow" server --host 127.0.0.1 --port "$MLFLOW_PORT" --workers 1 \
    --backend-store-uri "sqlite:///$ROOT/mlruns.db" --default-artifact-root "file://$ROOT/mlartifacts" \
    --no-serve-artifacts
  wait_healthy prefect-server
  wait_healthy mlflow-server
  launch prefect-worker env PREFECT_API_URL="$PREFECT_URL/api" MLFLOW_TRACKING_URI="$MLFLOW_URL" \
    "$VENV/bin/prefect" worker start --pool "$POOL" --type process
  wait_healthy prefect-worker
  printf 'export PREFECT_API_URL=%s/api\nexport MLFLOW_TRACKING_URI=%s\n' "$PREFECT_URL" "$MLFLOW_URL" \
    >"$RUN_DIR/services.env"
  echo "Prefect UI: $PREFECT_URL   MLflow UI: $MLFLOW_URL"
  echo "Use them from this shell: source infra/run/services.env"
}

stop_one() {
  local name=$1 pid
  if ! pid=$(running_pid "$name"); then
    rm -f "$RUN_DIR/$name.pid"
    say "$name not running"
    return
  fi
  # The pid leads its own process group (setsid), so the group holds the server's children too.
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
  for _ in $(seq 1 "$STOP_GRACE_S"); do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$RUN_DIR/$name.pid"
      say "$name stopped"
      return
    fi
    sleep 1
  done
  # Prefect 3.8's worker ignores its first SIGTERM/SIGINT while idle; the servers stop in a few seconds.
  say "$name (pid $pid) still alive after $STOP_GRACE_S s; sending SIGKILL"
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  rm -f "$RUN_DIR/$name.pid"
}

stop() {
  local name
  for name in prefect-worker mlflow-server prefect-server; do stop_one "$name"; done
  rm -f "$RUN_DIR/services.env" "$RUN_DIR/ports.env"
}

status() {
  local name pid where ok=0
  for name in "${SERVICES[@]}"; do
    case "$name" in
      prefect-server) where="UI $PREFECT_URL, API $PREFECT_URL/api" ;;
      mlflow-server) where="UI and tracking URI $MLFLOW_URL" ;;
      prefect-worker) where="work pool $POOL of $PREFECT_URL" ;;
    esac
    if ! pid=$(running_pid "$name"); then
      echo "$name: stopped ($where)"
      ok=1
    elif healthy "$name"; then
      echo "$name: healthy, pid $pid, $where"
    else
      echo "$name: NOT healthy, pid $pid, $where; log $RUN_DIR/$name.log"
      ok=1
    fi
  done
  return $ok
}

deploy() {
  healthy prefect-server || { say "Prefect server at $PREFECT_URL is down; run: bash infra/services.sh start"; exit 1; }
  source infra/env.sh
  PREFECT_API_URL="$PREFECT_URL/api" "$VENV/bin/prefect" --no-prompt deploy --all
}

elasticsearch() {
  if [ ! -f infra/elasticsearch.sh ]; then
    say "--with-elasticsearch: infra/elasticsearch.sh is missing"
    exit 1
  fi
  bash infra/elasticsearch.sh "$1"
}

command=${1:-}
with_es=false
[ "${2:-}" = "--with-elasticsearch" ] && with_es=true
case "$command" in
  start) start; if $with_es; then elasticsearch start; fi ;;
  stop) stop; if $with_es; then elasticsearch stop; fi ;;
  status)
    rc=0
    status || rc=1
    if $with_es; then elasticsearch status || rc=1; fi
    exit $rc
    ;;
  deploy) deploy ;;
  *)
    echo "usage: bash infra/services.sh start|stop|status [--with-elasticsearch] | deploy" >&2
    exit 2
    ;;
esac
