#!/bin/sh
# Renders the Redis configuration and ACL file from the template and the redis-auth Secret.
# Runs as an init container; the output lives in a memory-backed emptyDir.
#   default user: the Celery app (full access)
#   scaler user : read + subscribe + connection commands only (rules in scaler.acl)
# With REDIS_SENTINEL_MASTER set (components/redis-sentinel) it also picks this pod's role
# (asks the peers' Sentinels for the current master; the first peer otherwise) and renders
# sentinel.conf into REDIS_SENTINEL_DIR.
set -eu
src=${REDIS_TEMPLATE_DIR:-/etc/redis-template}
dst=${REDIS_RUN_DIR:-/run/redis}
for var in REDIS_PASSWORD REDIS_SCALER_PASSWORD; do
  eval "value=\${$var:-}"
  if [ -z "$value" ]; then
    echo "render-config: $var is empty (Secret redis-auth)" >&2
    exit 1
  fi
  # The password is embedded in broker URLs and ACL lines: keep it URL- and ACL-safe.
  case "$value" in
    *[!A-Za-z0-9._~-]*)
      echo "render-config: $var must only contain A-Z a-z 0-9 . _ ~ - (e.g. openssl rand -hex 24)" >&2
      exit 1 ;;
  esac
done
umask 077
cp "$src/redis.conf" "$dst/redis.conf"
printf 'aclfile %s/users.acl\n' "$dst" >> "$dst/redis.conf"
{
  printf 'user default on >%s ~* &* +@all\n' "$REDIS_PASSWORD"
  printf 'user scaler on >%s %s\n' "$REDIS_SCALER_PASSWORD" "$(cat "$src/scaler.acl")"
} > "$dst/users.acl"
echo "render-config: wrote $dst/redis.conf and $dst/users.acl"

[ -n "${REDIS_SENTINEL_MASTER:-}" ] || exit 0
: "${POD_NAME:?}" "${REDIS_HEADLESS:?}" "${REDIS_SENTINEL_PEERS:?}" "${REDIS_SENTINEL_DIR:?}"
case "${REDIS_SENTINEL_PASSWORD:-}" in
  "" | *[!A-Za-z0-9._~-]*)
    echo "render-config: REDIS_SENTINEL_PASSWORD must be set and only contain A-Z a-z 0-9 . _ ~ -" >&2
    exit 1 ;;
esac
self="$POD_NAME.$REDIS_HEADLESS"
master=""
for peer in $REDIS_SENTINEL_PEERS; do
  [ "$peer" = "$POD_NAME" ] && continue
  reply=$(REDISCLI_AUTH="$REDIS_SENTINEL_PASSWORD" timeout 3 redis-cli --no-auth-warning \
    -h "$peer.$REDIS_HEADLESS" -p 26379 SENTINEL get-master-addr-by-name "$REDIS_SENTINEL_MASTER" 2>/dev/null |
    head -n 1) || reply=""
  case "$reply" in
    "" | *ERR* | *NOAUTH* | *WRONGPASS* | *"Could not connect"*) ;;
    *) master=$reply; break ;;
  esac
done
if [ -z "$master" ]; then
  set -- $REDIS_SENTINEL_PEERS
  master="$1.$REDIS_HEADLESS"
  echo "render-config: no Sentinel answered; bootstrap master is $master"
else
  echo "render-config: Sentinels report master $master"
fi
{
  printf 'replica-announce-ip %s\n' "$self"
  printf 'masteruser default\n'
  printf 'masterauth %s\n' "$REDIS_PASSWORD"
  if [ "$master" != "$self" ]; then printf 'replicaof %s 6379\n' "$master"; fi
} >> "$dst/redis.conf"
{
  cat "$src/sentinel.conf"
  printf 'sentinel announce-ip %s\n' "$self"
  printf 'sentinel monitor %s %s 6379 2\n' "$REDIS_SENTINEL_MASTER" "$master"
  printf 'sentinel auth-user %s default\n' "$REDIS_SENTINEL_MASTER"
  printf 'sentinel auth-pass %s %s\n' "$REDIS_SENTINEL_MASTER" "$REDIS_PASSWORD"
  printf 'sentinel down-after-milliseconds %s 5000\n' "$REDIS_SENTINEL_MASTER"
  printf 'sentinel failover-timeout %s 60000\n' "$REDIS_SENTINEL_MASTER"
  printf 'sentinel parallel-syncs %s 1\n' "$REDIS_SENTINEL_MASTER"
  printf 'requirepass %s\n' "$REDIS_SENTINEL_PASSWORD"
  printf 'sentinel sentinel-pass %s\n' "$REDIS_SENTINEL_PASSWORD"
} > "$REDIS_SENTINEL_DIR/sentinel.conf"
echo "render-config: wrote $REDIS_SENTINEL_DIR/sentinel.conf (role: $([ "$master" = "$self" ] && echo master || echo replica))"
