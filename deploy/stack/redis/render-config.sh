#!/bin/sh
# Renders the Redis configuration and ACL file from the template and the redis-auth Secret.
# Runs as an init container; the output lives in a memory-backed emptyDir.
#   default user: the Celery app (full access)
#   scaler user : read + subscribe + connection commands only (rules in scaler.acl)
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
