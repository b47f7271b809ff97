#!/bin/sh
# Init step: wait until Redis answers PING with the app's credentials, so nothing
# crash-loops while Redis starts. Gives up after WAIT_TIMEOUT seconds (default 600).
set -u
host=${REDIS_HOST:-redis}
port=${REDIS_PORT:-6379}
timeout=${WAIT_TIMEOUT:-600}
waited=0
while :; do
  reply=$(redis-cli --no-auth-warning -h "$host" -p "$port" ping 2>&1) || true
  if [ "$reply" = "PONG" ]; then
    echo "wait-for-redis: $host:$port is up"
    exit 0
  fi
  if [ "$waited" -ge "$timeout" ]; then
    echo "wait-for-redis: $host:$port not ready after ${timeout}s: $reply" >&2
    exit 1
  fi
  echo "wait-for-redis: waiting for $host:$port ($reply)"
  sleep 2
  waited=$((waited + 2))
done
