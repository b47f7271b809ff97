#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what it needs, then the module-cycle and
# function-length checks, lint, unit and integration tests (real redis-server processes), a
# bounded fuzz run of the parsers
# (FUZZ_SECONDS per target, default 60), the real-Celery end-to-end suite, and
# the offline validation of the Kubernetes manifests. Prints a closing "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
mkdir -p .work
log=.work/test-logs
rm -rf "$log" && mkdir -p "$log"

bash scripts/setup.sh || { echo "setup failed"; exit 1; }

passed=0
failed=0
failures=()
stage() { # stage NAME COMMAND...: runs, tees its log, adds its counts
  local name=$1; shift
  echo "=== $name: $*"
  local start=$SECONDS
  "$@" 2>&1 | tee "$log/$name.log"
  local rc=${PIPESTATUS[0]}
  local p f
  read -r p f < <(count "$log/$name.log")
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  passed=$((passed + p)); failed=$((failed + f))
  [ "$rc" -ne 0 ] && failures+=("$name")
  echo "=== $name: exit $rc, $p passed, $f failed, $((SECONDS - start)) s"
}
count() { # passed/failed counts from cargo test, pytest and "N passed, N failed" lines
  python3 - "$1" <<'PY'
import re, sys
text = open(sys.argv[1], errors="replace").read()
p = f = 0
for m in re.finditer(r"test result: \w+\. (\d+) passed; (\d+) failed", text):
    p += int(m.group(1)); f += int(m.group(2))
for m in re.finditer(r"^=+ (.*) in [\d.]+s", text, re.M):
    line = m.group(1)
    p += sum(int(x) for x in re.findall(r"(\d+) passed", line))
    f += sum(int(x) for x in re.findall(r"(\d+) (?:failed|error)", line))
for m in re.finditer(r"^(?:[\w-]+: )?(\d+) passed, (\d+) failed", text, re.M):
    p += int(m.group(1)); f += int(m.group(2))
print(p, f)
PY
}
cycles() { # module-level import cycles and functions over 100 lines: none beyond the shrinking known lists
  local ok=0
  python3 scripts/module-cycles.py --known scripts/module-cycles.known && ok=$((ok + 1))
  python3 scripts/fn-length.py --known scripts/fn-length.known && ok=$((ok + 1))
  echo "cycles: $ok passed, $((2 - ok)) failed"
  [ "$ok" -eq 2 ]
}
lint() {
  cargo fmt --check && cargo clippy --all-targets --quiet -- -D warnings && echo "lint: 2 passed, 0 failed"
}

stage cycles cycles
stage lint lint
stage cargo-test cargo test --all-targets
# The parsers hostile input reaches, fuzzed for FUZZ_SECONDS per target (tests/fuzz.rs).
stage fuzz env FUZZ_SECONDS="${FUZZ_SECONDS:-60}" cargo test --test fuzz -- --nocapture
stage e2e env CELERY_SCALER_BIN="$root/target/debug/celery-scaler" bash tests/e2e/run.sh
stage deploy bash deploy/validate.sh
stage metrics bash deploy/check-metrics.sh "$root/target/debug/celery-scaler"

echo
if ((${#failures[@]})); then
  echo "failed stages: ${failures[*]} (logs in $log/)"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "${#failures[@]}" -eq 0 ]
