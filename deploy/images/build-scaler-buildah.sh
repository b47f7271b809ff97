#!/usr/bin/env bash
# Builds the celery-scaler runtime image with buildah FROM scratch out of a static binary,
# pulling nothing (for machines that cannot reach a container registry).
#
#   deploy/images/build-scaler-buildah.sh [--binary PATH] [--tag NAME:TAG] [--oci-archive FILE]
#                                         [--root DIR] [--runroot DIR] [--storage-driver DRIVER]
#
# Without --binary it builds target/x86_64-unknown-linux-musl/release/celery-scaler with cargo
# (needs `rustup target add x86_64-unknown-linux-musl` and musl-tools). The binary must be
# statically linked. --oci-archive also writes the image as an OCI archive, e.g. for
# `kind load image-archive` or `skopeo copy oci-archive:... docker://us.icr.io/...`.
set -euo pipefail

binary=""
tag="celery-scaler:0.1.0"
archive=""
storage=()
while [ $# -gt 0 ]; do
  case $1 in
    --binary) binary=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    --oci-archive) archive=$2; shift 2 ;;
    --root | --runroot | --storage-driver) storage+=("$1" "$2"); shift 2 ;;
    -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 64 ;;
  esac
done
last=${tag##*/}
if [[ $last != *:* || $last == *:latest ]]; then
  echo "use an explicit, non-latest tag: $tag" >&2
  exit 64
fi

if [ -z "$binary" ]; then
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  (cd "$root" && CC_x86_64_unknown_linux_musl=musl-gcc cargo build --release --target x86_64-unknown-linux-musl --bin celery-scaler)
  binary=$root/target/x86_64-unknown-linux-musl/release/celery-scaler
fi
[ -x "$binary" ] || { echo "not an executable: $binary" >&2; exit 1; }
# A dynamically linked ELF names its loader (PT_INTERP); ldd where readelf is missing.
if { command -v readelf >/dev/null && LC_ALL=C readelf -lW "$binary" 2>/dev/null | grep -q 'program interpreter'; } ||
  ldd "$binary" 2>/dev/null | grep -q '=>'; then
  echo "$binary is dynamically linked; a scratch image needs a static binary" >&2
  exit 1
fi

bh() { buildah "${storage[@]}" "$@"; }
ctr=$(bh from scratch)
trap 'bh rm "$ctr" >/dev/null 2>&1 || true' EXIT
bh copy --chmod 0755 "$ctr" "$binary" /usr/local/bin/celery-scaler >/dev/null
bh config \
  --env PATH=/usr/local/bin \
  --user 65532:65532 \
  --port 9090 --port 8080 \
  --entrypoint '["/usr/local/bin/celery-scaler"]' \
  --cmd serve \
  --label org.opencontainers.image.title=celery-scaler \
  --label org.opencontainers.image.licenses=Apache-2.0 \
  "$ctr"
bh commit -q "$ctr" "$tag" >/dev/null
echo "built $tag from $binary"
if [ -n "$archive" ]; then
  bh push -q "$tag" "oci-archive:$archive:$tag"
  echo "wrote $archive"
fi
