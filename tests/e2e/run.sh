#!/usr/bin/env bash
# End-to-end suite: real redis-server, real Celery processes, the real scaler binary.
# Run from anywhere: bash tests/e2e/run.sh [extra pytest args]
# Env: CELERY_SCALER_BIN (default target/release/celery-scaler; built if missing),
#      E2E_PYTHON (python used to create .venv; default python3).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
VENV=$ROOT/.venv
REQS=(deploy/app/requirements.txt tests/e2e/requirements.txt)
log() { echo "[e2e] $*" >&2; }

# 1. Python venv with the app's and the suite's pinned requirements (skipped when unchanged).
stamp=$VENV/.e2e-requirements.sha256
want=$(cat "${REQS[@]}" | sha256sum | cut -d' ' -f1)
if [[ ! -x $VENV/bin/python ]] || [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  log "creating/updating $VENV"
  [[ -x $VENV/bin/python ]] || "${E2E_PYTHON:-python3}" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${REQS[@]/#/-r}"
  echo "$want" > "$stamp"
fi

# 2. redis-server (Debian package), installed once.
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  log "installing redis-server"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q redis-server redis-tools >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q redis-server redis-tools >/dev/null; }
fi
# The package starts a system instance on 6379 under systemd; the suite never uses it.

# 3. The scaler binary.
BIN=${CELERY_SCALER_BIN:-target/release/celery-scaler}
if [[ ! -x $BIN ]]; then
  if [[ -n ${CELERY_SCALER_BIN:-} ]]; then
    log "CELERY_SCALER_BIN=$BIN does not exist"; exit 1
  fi
  log "building $BIN (cargo build --release)"
  cargo build --release --quiet
fi
export CELERY_SCALER_BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
log "scaler: $CELERY_SCALER_BIN ($("$CELERY_SCALER_BIN" --version 2>/dev/null || echo '?'))"

# 4. pytest. Exit code 5 (nothing collected) is turned into a failure, here and in conftest.
set +e
"$VENV/bin/python" -m pytest tests/e2e -p no:cacheprovider -v -s -rfEs --durations=0 "$@"
rc=$?
set -e
if [[ $rc -eq 5 ]]; then
  log "no tests collected: failing"; rc=1
fi
log "observed numbers: .work/e2e-results.json"
exit $rc
