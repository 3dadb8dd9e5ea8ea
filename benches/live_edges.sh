#!/usr/bin/env bash
# One origin and two edges on loopback, one PostgreSQL: ffmpeg pushes RTMP
# to the origin, benches/live_viewers.mjs runs N LL-HLS viewers spread over
# the two edges (each a blocking playlist reload per part plus the part).
# Reports parts fetched and skipped, p50/p99 blocking reload (part
# availability as a viewer sees it) and part fetch, and CPU and peak
# memory of each node.
#
# The viewers come from GENERATORS Node processes (2 by default: one
# process alone cannot keep 1,500 viewers' requests going on one core).
#
#   benches/live_edges.sh                  1500 viewers, 30 s, 640x360 25 fps
#   VIEWERS=300 SECONDS_OF_LOAD=20 benches/live_edges.sh
#   GENERATORS=1 benches/live_edges.sh     one load generator process
set -euo pipefail
cd "$(dirname "$0")/.."
viewers=${VIEWERS:-1500}
seconds=${SECONDS_OF_LOAD:-30}
generators=${GENERATORS:-2}
target_dir=${CARGO_TARGET_DIR:-target}
for tool in ffmpeg node curl python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is required (scripts/setup --test)" >&2; exit 1; }
done
cargo build --release --quiet --bin streamforge
work=$(mktemp -d)
[ "$(id -u)" = 0 ] && chmod 755 "$work"
pids=() encoder=
. scripts/lib/postgres.sh
cleanup() {
  kill "${pids[@]}" $encoder 2>/dev/null || true
  wait 2>/dev/null || true
  postgres_down "$work/pg"
  rm -rf "$work"
}
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || true
postgres_up "$work/pg"

port=$((20000 + RANDOM % 20000))
start_node() { # start_node NAME HTTP_PORT RTMP_PORT
  mkdir -p "$work/$1"
  STREAMFORGE_NODE_ID=$1 STREAMFORGE_LIVE_OPEN_PUBLISH=true STREAMFORGE_LIMITS_API_PER_SECOND=0 \
    "$target_dir/release/streamforge" serve --data-dir "$work/$1" --database "$POSTGRES_URL" \
    --listen "127.0.0.1:$2" --rtmp-listen "127.0.0.1:$3" --srt-listen 127.0.0.1:0 --webrtc-listen 127.0.0.1:0 --rtsp-listen 127.0.0.1:0 \
    --rtsp-udp-ports off --tls off --log-filter warn >"$work/$1/server.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$2/healthz" >/dev/null && return; sleep 0.1; done
  echo "bench: node $1 did not start:" >&2; cat "$work/$1/server.log" >&2; exit 1
}
start_node origin "$port" "$((port + 1))"
start_node edge-1 "$((port + 2))" "$((port + 3))"
start_node edge-2 "$((port + 4))" "$((port + 5))"
ffmpeg -hide_banner -loglevel error -re -f lavfi -i "testsrc2=size=${SIZE:-640x360}:rate=25" \
  -f lavfi -i sine=frequency=440:sample_rate=48000 -t $((seconds + 20)) \
  -c:v libx264 -preset veryfast -tune zerolatency -g 50 -pix_fmt yuv420p -c:a aac \
  -f flv "rtmp://127.0.0.1:$((port + 1))/live/load" &
encoder=$!
edges="http://127.0.0.1:$((port + 2)),http://127.0.0.1:$((port + 4))"
for base in ${edges//,/ }; do
  for _ in $(seq 100); do curl -fs --max-time 10 "$base/live/load/master.m3u8" >/dev/null && break; sleep 0.2; done
done
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
cpu0=""; for pid in "${pids[@]}"; do cpu0+="$(ticks "$pid") "; done
t0=$(date +%s.%N)
gen_pids=()
for g in $(seq "$generators"); do
  share=$(( viewers / generators + (g <= viewers % generators ? 1 : 0) ))
  RAW_TIMES=1 node benches/live_viewers.mjs "$edges" load "$share" "$seconds" >"$work/generator-$g.json" &
  gen_pids+=($!)
done
wait "${gen_pids[@]}"
t1=$(date +%s.%N)
result=$(python3 - "$work"/generator-*.json <<'PY'
import json, sys
runs = [json.load(open(path)) for path in sys.argv[1:]]
def pct(values, p):
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, len(values) * p // 100)], 1)
merged = {k: sum(r[k] for r in runs) for k in ("viewers", "parts", "skipped", "errors")}
why = {}
for r in runs:
    for reason, n in r["why"].items():
        why[reason] = why.get(reason, 0) + n
merged["why"] = why
for key, times in (("playlist_ms", "playlist_times"), ("part_ms", "part_times")):
    values = [t for r in runs for t in r[times]]
    merged[key] = {"p50": pct(values, 50), "p99": pct(values, 99)}
print(json.dumps(merged))
PY
)
cpu1=""; peaks=""
for pid in "${pids[@]}"; do
  cpu1+="$(ticks "$pid") "
  peaks+="$(awk '/VmHWM/ {print $2}' "/proc/$pid/status") "
done
python3 - "$result" "$cpu0" "$cpu1" "$t0" "$t1" "$hz" "$peaks" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
cpu0, cpu1, peaks = (list(map(float, a.split())) for a in (sys.argv[2], sys.argv[3], sys.argv[7]))
wall = float(sys.argv[5]) - float(sys.argv[4])
hz = float(sys.argv[6])
print(f"{r['viewers']} LL-HLS viewers over two edges of one origin, 25 fps, {wall:.0f} s, loopback, 2 cores shared by all")
print(f"  parts fetched {r['parts']}, skipped {r['skipped']}, errors {r['errors']} {r.get('why') or ''}")
print(f"  blocking playlist reload p50 {r['playlist_ms']['p50']} ms, p99 {r['playlist_ms']['p99']} ms")
print(f"  part fetch p50 {r['part_ms']['p50']} ms, p99 {r['part_ms']['p99']} ms")
for name, a, b, peak in zip(["origin", "edge-1", "edge-2"], cpu0, cpu1, peaks):
    print(f"  {name:7} CPU {(b - a) / hz / wall * 100:4.0f} % of one core, peak RSS {peak / 1024:.0f} MiB")
PY
