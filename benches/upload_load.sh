#!/usr/bin/env bash
# N concurrent resumable uploads of SIZE_MB each (tus: create, then one
# streamed PATCH per upload, curl -T reading from disk) against a release
# build. Reports the wall time, the aggregate rate, the server's peak RSS
# (VmHWM) and whether every stored original is byte-identical (sha256).
#
#   benches/upload_load.sh                  100 uploads of 200 MB (20 GB of disk)
#   UPLOADS=100 SIZE_MB=20 benches/upload_load.sh
#   STORAGE=s3 UPLOADS=50 SIZE_MB=20 benches/upload_load.sh
#                                           originals into an S3 bucket (a
#                                           Garage the script starts), checked
#                                           by downloading them
set -euo pipefail
cd "$(dirname "$0")/.."
uploads=${UPLOADS:-100}
size_mb=${SIZE_MB:-200}
target_dir=${CARGO_TARGET_DIR:-target}
for tool in curl sha256sum; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is required" >&2; exit 1; }
done
cargo build --release --quiet --bin streamforge
work=$(mktemp -d -p "${TMPDIR:-/tmp}")
server=
GARAGE_PID=
cleanup() {
  kill $server $GARAGE_PID 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || true
head -c "$((size_mb * 1024 * 1024))" /dev/urandom >"$work/source.bin"
want=$(sha256sum "$work/source.bin" | cut -d' ' -f1)
length=$(stat -c %s "$work/source.bin")
port=$((20000 + RANDOM % 20000))
storage_args=()
if [ "${STORAGE:-local}" = s3 ]; then
  . scripts/lib/garage.sh
  garage_up "$work/garage" $((port + 1)) $((port + 2))
  storage_args=(--storage "$GARAGE_STORAGE")
fi
STREAMFORGE_LIMITS_API_PER_SECOND=0 STREAMFORGE_LIMITS_UPLOADS_PER_CLIENT=0 \
STREAMFORGE_UPLOADS_PROCESS_WHILE_UPLOADING=false \
  "$target_dir/release/streamforge" serve --data-dir "$work/data" --listen "127.0.0.1:$port" \
  --rtmp-listen 127.0.0.1:0 --srt-listen 127.0.0.1:0 --webrtc-listen 127.0.0.1:0 --log-filter warn "${storage_args[@]}" >"$work/server.log" 2>&1 &
server=$!
base="http://127.0.0.1:$port"
for _ in $(seq 50); do curl -fs "$base/healthz" >/dev/null && break; sleep 0.1; done
baseline=$(awk '/VmRSS/ {print $2}' "/proc/$server/status")
t0=$(date +%s.%N)
for i in $(seq "$uploads"); do
  (
    location=$(curl -fsi -X POST "$base/files/" -H 'Tus-Resumable: 1.0.0' -H "Upload-Length: $length" \
      | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
    curl -fs -X PATCH -T "$work/source.bin" "$base$location" -H 'Tus-Resumable: 1.0.0' \
      -H 'Upload-Offset: 0' -H 'Content-Type: application/offset+octet-stream' -o /dev/null
  ) &
done
wait $(jobs -p | grep -v -e "^$server$" -e "^${GARAGE_PID:-none}$") 2>/dev/null || true
t1=$(date +%s.%N)
peak=$(awk '/VmHWM/ {print $2}' "/proc/$server/status")
stored=0 same=0
if [ "${STORAGE:-local}" = s3 ]; then
  # Every asset's original, downloaded from the bucket through the API.
  for asset in $(curl -fs "$base/api/assets?limit=200" | python3 -c \
      'import json,sys; print(" ".join(a["id"] for a in json.load(sys.stdin)["assets"]))'); do
    stored=$((stored + 1))
    got=$(curl -fs "$base/api/assets/$asset/original" | sha256sum | cut -d' ' -f1)
    [ "$got" = "$want" ] && same=$((same + 1))
  done
else
  for original in "$work"/data/media/assets/*/original; do
    stored=$((stored + 1))
    [ "$(sha256sum "$original" | cut -d' ' -f1)" = "$want" ] && same=$((same + 1))
  done
fi
python3 - "$uploads" "$size_mb" "$t0" "$t1" "$baseline" "$peak" "$stored" "$same" <<'PY'
import sys
n, mb, t0, t1, base, peak, stored, same = sys.argv[1:]
wall = float(t1) - float(t0)
total = int(n) * int(mb)
import os
where = "an S3 bucket (Garage)" if os.environ.get("STORAGE") == "s3" else "local storage"
print(f"{n} concurrent tus uploads of {mb} MB ({total / 1024:.1f} GiB) into {where}, loopback, 2 cores")
print(f"  {wall:.1f} s, {total / wall:.0f} MB/s aggregate")
print(f"  server RSS {int(base) / 1024:.0f} MiB before, peak {int(peak) / 1024:.0f} MiB "
      f"({(int(peak) - int(base)) / 1024 / int(n):.2f} MiB per upload)")
print(f"  {same} of {stored} stored originals byte-identical ({n} uploaded)")
PY
