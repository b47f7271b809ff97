#!/usr/bin/env bash
# Quick start: runs the scaler against a local Redis that this script starts (installing
# redis-server if absent). Ctrl-C stops both. Environment: REDIS_PORT (default 6399),
# GRPC (default 127.0.0.1:9090), ADMIN (default 127.0.0.1:8080).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
port=${REDIS_PORT:-6399}
grpc=${GRPC:-127.0.0.1:9090}
admin=${ADMIN:-127.0.0.1:8080}
mkdir -p .work/redis
cargo build --release --quiet

redis_pid=
if redis-cli -p "$port" ping >/dev/null 2>&1; then
  echo "run: reusing the Redis already on 127.0.0.1:$port"
else
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$(pwd)/.work/redis" --notify-keyspace-events Kl >.work/redis/redis.log 2>&1 &
  redis_pid=$!
  for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  echo "run: started redis-server on 127.0.0.1:$port (pid $redis_pid)"
fi
cat > .work/local-config.yaml <<YAML
grpc_listen: "$grpc"
admin_listen: "$admin"
log_format: text
connections:
  local:
    address: "127.0.0.1:$port"
YAML
cleanup() { [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null; true; }
trap cleanup EXIT
cat <<MSG
run: scaler on grpc $grpc, admin http://$admin/metrics
     try:  target/release/celery-scaler inspect --config .work/local-config.yaml --metadata connection=local --metadata queues=celery
     load: redis-cli -p $port lpush celery '{"headers":{}}'
MSG
target/release/celery-scaler serve --config .work/local-config.yaml
