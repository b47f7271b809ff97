#!/usr/bin/env bash
# Local demo without a cluster (`make demo`): a private redis-server, the scaler, the web app,
# one worker and beat. Enqueues a burst through the web endpoint and prints the scaler's view
# (`celery-scaler inspect`) every second until the queues drain, then stops everything.
#   DEMO_TASKS (default 40)  DEMO_DURATION (0.5 s)  DEMO_CONCURRENCY (2)
#   CELERY_SCALER_BIN (default target/release/celery-scaler; built if missing)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
WORK=$ROOT/.work/demo
mkdir -p "$WORK"
VENV=$ROOT/.venv
N=${DEMO_TASKS:-40}
DUR=${DEMO_DURATION:-0.5}
CONC=${DEMO_CONCURRENCY:-2}

say() { printf '\033[1m[demo]\033[0m %s\n' "$*"; }
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

# --- prerequisites (idempotent) ----------------------------------------------------------
if [[ ! -x $VENV/bin/celery ]]; then
  say "creating $VENV"
  [[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet -r deploy/app/requirements.txt
fi
if ! command -v redis-server >/dev/null; then
  say "installing redis-server"
  apt-get install -y -q redis-server redis-tools >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q redis-server redis-tools >/dev/null; }
fi
BIN=${CELERY_SCALER_BIN:-target/release/celery-scaler}
if [[ ! -x $BIN ]]; then say "building the scaler"; cargo build --release --quiet; fi
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
# The scaler treats every CELERY_SCALER_* variable as a setting and rejects unknown ones.
unset CELERY_SCALER_BIN

# --- processes: each in its own process group, stopped by PID on exit ----------------------
PIDS=()
start() { # start NAME DIR CMD... (logs to .work/demo/NAME.log; own process group, pid kept)
  local name=$1 dir=$2; shift 2
  ( cd "$dir" && exec setsid "$@" ) >"$WORK/$name.log" 2>&1 &
  PIDS+=("$!")
}
cleanup() {
  local pid
  for ((i=${#PIDS[@]}-1; i>=0; i--)); do
    pid=${PIDS[i]}
    kill -TERM -- "-$pid" 2>/dev/null || true
  done
  sleep 2
  for pid in "${PIDS[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
  say "stopped everything; logs in $WORK/"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

REDIS_PORT=$(free_port); GRPC_PORT=$(free_port); ADMIN_PORT=$(free_port); WEB_PORT=$(free_port)
start redis "$ROOT" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK"
for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
say "redis on 127.0.0.1:$REDIS_PORT"

export CELERY_BROKER_URL=redis://127.0.0.1:$REDIS_PORT/0
export CELERY_RESULT_BACKEND=redis://127.0.0.1:$REDIS_PORT/1
export CELERY_BEAT_INTERVAL=${CELERY_BEAT_INTERVAL:-5}
export CELERY_BEAT_SCHEDULE_FILE=$WORK/celerybeat-schedule
export PYTHONPATH=$ROOT/deploy/app
start scaler "$ROOT" "$BIN" serve --grpc-listen "127.0.0.1:$GRPC_PORT" --admin-listen "127.0.0.1:$ADMIN_PORT"
APP=$ROOT/deploy/app
start web "$APP" "$VENV/bin/uvicorn" app.web:app --host 127.0.0.1 --port "$WEB_PORT"
start worker "$APP" "$VENV/bin/celery" -A app.celery_app worker -Q high,default,low -c "$CONC" -n demo@%h --loglevel=INFO
start beat "$APP" "$VENV/bin/celery" -A app.celery_app beat --loglevel=INFO

http() { # http METHOD URL [JSON]: prints the response body, fails on HTTP errors (no curl needed)
  "$VENV/bin/python" - "$@" <<'PY'
import sys, urllib.request
method, url = sys.argv[1], sys.argv[2]
data = sys.argv[3].encode() if len(sys.argv) > 3 else None
req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
print(urllib.request.urlopen(req, timeout=30).read().decode())
PY
}
for _ in $(seq 100); do http GET "http://127.0.0.1:$WEB_PORT/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
for _ in $(seq 100); do grep -q " ready." "$WORK/worker.log" 2>/dev/null && break; sleep 0.2; done
say "scaler gRPC 127.0.0.1:$GRPC_PORT, admin http://127.0.0.1:$ADMIN_PORT/metrics, web http://127.0.0.1:$WEB_PORT/docs"
say "worker: -c $CONC, prefetch 1, acks_late (the app's defaults); beat every ${CELERY_BEAT_INTERVAL}s to 'low'"

META=(--metadata "address=127.0.0.1:$REDIS_PORT" --metadata queues=high,default,low --metadata listLength=5)
burst() { # burst QUEUE JSON
  http POST "http://127.0.0.1:$WEB_PORT/enqueue/$1" "$2" | "$VENV/bin/python" -c 'import json,sys; d=json.load(sys.stdin); print("queued", d["queued"], "on", d["queue"])'
}
say "burst: $N x ${DUR}s on default, 10 on high (priority 0 and 9), 5 on low with countdown 8 s"
burst default "{\"count\": $N, \"duration\": $DUR}"
burst high '{"count": 5, "priority": 0, "duration": 0.2}'
burst high '{"count": 5, "priority": 9, "duration": 0.2}'
burst low '{"count": 5, "countdown": 8, "duration": 0.2}'

cat > "$WORK/view.py" <<'PY'
import json, math, sys
raw = sys.stdin.read()
try:
    d = json.loads(raw)
except ValueError:
    print("inspect error: " + raw.strip()[:200] + " PEND=?")
    sys.exit(0)
qs = "  ".join(f"{q['name']}: {q['backlog']}/{q['reserved']}/{q['scheduled']}/{q['stale']}" for q in d["queues"])
dec = d["decision"]
replicas = math.ceil(dec["metric_value"] / dec["target"]) if dec["target"] else 0
pending = sum(q["backlog"] + q["reserved"] + q["scheduled"] + q["stale"] for q in d["queues"])
print(f"{qs:<52} {dec['metric_value']:>6g}  {str(dec['active']).lower():>6}  {replicas:>8} PEND={pending}")
PY
echo "   t  queue: backlog/reserved/scheduled/stale ...              metric  active  replicas  LLEN(default)"
start_t=$SECONDS; idle=0
while (( SECONDS - start_t < 180 )); do
  line=$("$BIN" inspect "${META[@]}" --json 2>&1 | "$VENV/bin/python" "$WORK/view.py")
  llen=$(redis-cli -p "$REDIS_PORT" llen default)
  printf '%4ds  %s  %s\n' $((SECONDS - start_t)) "${line% PEND=*}" "$llen"
  if [[ $line == *"PEND=0" ]]; then idle=$((idle + 1)); else idle=0; fi
  (( idle >= 3 )) && break
  sleep 1
done
if (( idle >= 3 )); then
  say "drained: the scaler reports 0 and inactive (KEDA would scale the worker to zero)"
else
  say "did not drain within 180 s"; status=1
fi
say "tasks run by the worker: $(grep -c 'succeeded in' "$WORK/worker.log" || true)"
exit "${status:-0}"
