#!/usr/bin/env bash
# Installs what the build and the tests use, idempotently: Redis (server, sentinel, tools)
# from Debian, and the Rust components rustfmt and clippy. Fast when everything is present.
set -euo pipefail

need_apt=()
for bin in redis-server redis-sentinel redis-cli; do
  command -v "$bin" >/dev/null 2>&1 || need_apt+=("$bin")
done
if ((${#need_apt[@]})); then
  echo "setup: installing redis-server redis-sentinel redis-tools (missing: ${need_apt[*]})"
  export DEBIAN_FRONTEND=noninteractive
  apt_get() { if [ "$(id -u)" = 0 ]; then apt-get "$@"; else sudo apt-get "$@"; fi; }
  apt_get update -qq
  apt_get install -y -qq redis-server redis-sentinel redis-tools >/dev/null
fi
# Debian starts a system redis on 6379 after install; the tests never use it.

if command -v rustup >/dev/null 2>&1; then
  installed=$(rustup component list --installed 2>/dev/null || true)
  for c in rustfmt clippy; do
    if ! grep -q "^$c" <<<"$installed"; then
      echo "setup: rustup component add $c"
      rustup component add "$c" >/dev/null
    fi
  done
fi
echo "setup: ok ($(redis-server --version | awk '{print $3}'), $(cargo --version))"
