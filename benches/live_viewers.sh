#!/usr/bin/env bash
# N low-latency HLS viewers of one live stream, on loopback: ffmpeg pushes
# RTMP to a release build, benches/live_viewers.mjs runs the viewers (Node,
# fetch), each a blocking playlist reload per part plus the part. Reports
# parts fetched and skipped, p50/p99 playlist and part latency, and the
# server's CPU and peak memory.
#
#   benches/live_viewers.sh                 1000 viewers, 30 s, 640x360 25 fps
#   VIEWERS=200 SECONDS_OF_LOAD=20 benches/live_viewers.sh
set -euo pipefail
cd "$(dirname "$0")/.."
viewers=${VIEWERS:-1000}
seconds=${SECONDS_OF_LOAD:-30}
target_dir=${CARGO_TARGET_DIR:-target}
for tool in ffmpeg node curl; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is required (scripts/setup --test)" >&2; exit 1; }
done
cargo build --release --quiet --bin streamforge
work=$(mktemp -d)
server= encoder=
cleanup() { kill $server $encoder 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || true
port=$((20000 + RANDOM % 20000))
STREAMFORGE_LIVE_OPEN_PUBLISH=true STREAMFORGE_LIMITS_API_PER_SECOND=0 \
  "$target_dir/release/streamforge" serve --data-dir "$work/data" --listen "127.0.0.1:$port" \
  --rtmp-listen "127.0.0.1:$((port + 1))" --srt-listen "127.0.0.1:$((port + 2))" --webrtc-listen "127.0.0.1:$((port + 3))" --log-filter warn >"$work/server.log" 2>&1 &
server=$!
base="http://127.0.0.1:$port"
for _ in $(seq 50); do curl -fs "$base/healthz" >/dev/null && break; sleep 0.1; done
ffmpeg -hide_banner -loglevel error -re -f lavfi -i "testsrc2=size=${SIZE:-640x360}:rate=25" \
  -f lavfi -i sine=frequency=440:sample_rate=48000 -t $((seconds + 20)) \
  -c:v libx264 -preset veryfast -tune zerolatency -g 50 -pix_fmt yuv420p -c:a aac \
  -f flv "rtmp://127.0.0.1:$((port + 1))/live/load" &
encoder=$!
for _ in $(seq 100); do curl -fs --max-time 10 "$base/live/load/master.m3u8" >/dev/null && break; sleep 0.2; done
ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }
hz=$(getconf CLK_TCK)
cpu0=$(ticks); t0=$(date +%s.%N)
result=$(node benches/live_viewers.mjs "$base" load "$viewers" "$seconds")
cpu1=$(ticks); t1=$(date +%s.%N)
peak=$(awk '/VmHWM/ {print $2}' "/proc/$server/status")
python3 - "$result" "$cpu0" "$cpu1" "$t0" "$t1" "$hz" "$peak" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
cpu = (float(sys.argv[3]) - float(sys.argv[2])) / float(sys.argv[6])
wall = float(sys.argv[5]) - float(sys.argv[4])
print(f"{r['viewers']} LL-HLS viewers of one 25 fps stream for {wall:.0f} s, loopback, 2 cores (viewers, encoder and server share them)")
print(f"  parts fetched {r['parts']}, skipped {r['skipped']}, errors {r['errors']} {r.get('why') or ''}")
print(f"  blocking playlist reload p50 {r['playlist_ms']['p50']} ms, p99 {r['playlist_ms']['p99']} ms")
print(f"  part fetch p50 {r['part_ms']['p50']} ms, p99 {r['part_ms']['p99']} ms")
print(f"  server CPU {cpu / wall * 100:.0f} % of one core, peak RSS {int(sys.argv[7]) / 1024:.0f} MiB")
PY
