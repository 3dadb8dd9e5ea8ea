#!/usr/bin/env bash
# Segment-parallel encoding across worker nodes: one asset's default ladder
# (1080p, 720p, 360p, audio, thumbnails) from a 1080p source of SECONDS
# (60 by default), processed by one worker node pinned to one core, then
# by two worker nodes pinned to a core each (taskset). The nodes share a
# PostgreSQL and a Garage bucket the script starts; an `api` node takes
# the upload. Reports the time from the stored upload to
# `ready` in each case and their ratio, and the CPU time each process
# (ffmpeg counted in its worker) used meanwhile. ROUNDS (3) rounds of both,
# alternated, with medians: one worker's time alone varies by a few
# percent from run to run on this kind of machine.
#
# The api node, PostgreSQL and Garage run on core 0 in both runs
# (SERVICES_CORE), so that the two runs differ by the second worker's core
# alone.
#
#   benches/ladder_workers.sh
#   ROUNDS=5 benches/ladder_workers.sh
#   SECONDS_LONG=120 CHUNK=20 benches/ladder_workers.sh
#   SERVICES_CORE=free benches/ladder_workers.sh
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${SECONDS_LONG:-60}
chunk=${CHUNK:-20}
# The core the api node, PostgreSQL and Garage run on, in both runs; "free"
# leaves them to the scheduler (then one worker alone has them on the
# other core, and two workers share both cores with them).
services_core=${SERVICES_CORE:-0}
[ "$services_core" = free ] && services_core=
for tool in curl ffmpeg taskset; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is required" >&2; exit 1; }
done
cores=$(nproc)
[ "$cores" -ge 2 ] || { echo "bench: needs two cores" >&2; exit 1; }
cargo build --release --quiet --bin streamforge
work=$(mktemp -d -p "${TMPDIR:-/tmp}")
chmod 755 "$work" # PostgreSQL runs as its own user
pids=()
GARAGE_PID=
. scripts/lib/postgres.sh
. scripts/lib/garage.sh
. benches/lib/ready.sh
cleanup() {
  for pid in "${pids[@]}" $GARAGE_PID; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  postgres_down "$work/pg"
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

ffmpeg -v error -f lavfi -i "testsrc2=size=1920x1080:rate=30" -f lavfi -i "sine=frequency=440" \
  -t "$seconds" -c:v libx264 -preset ultrafast -crf 18 -pix_fmt yuv420p -c:a aac \
  -movflags +faststart "$work/source.mp4"
postgres_up "$work/pg"
port=$((20000 + RANDOM % 20000))
garage_up "$work/garage" $((port + 1)) $((port + 2))

node() { # node ID ROLES PORT [taskset core]
  local id=$1 roles=$2 listen=$3 core=${4:-}
  local run=()
  [ -n "$core" ] && run=(taskset -c "$core")
  mkdir -p "$work/$id"
  STREAMFORGE_NODE_ID=$id STREAMFORGE_NODE_ROLES=$roles STREAMFORGE_TRANSCODE_CHUNK_SECONDS=$chunk \
  STREAMFORGE_LIMITS_API_PER_SECOND=0 STREAMFORGE_UPLOADS_PROCESS_WHILE_UPLOADING=false \
    "${run[@]}" target/release/streamforge serve --data-dir "$work/$id" \
    --database "$POSTGRES_URL" --storage "$GARAGE_STORAGE" --listen "127.0.0.1:$listen" \
    --rtmp-listen 127.0.0.1:0 --srt-listen 127.0.0.1:0 --webrtc-listen 127.0.0.1:0 --rtsp-listen 127.0.0.1:0 --rtsp-udp-ports off \
    --log-filter warn >"$work/$id.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$listen/healthz" >/dev/null && return; sleep 0.1; done
  echo "bench: node $id did not start" >&2; cat "$work/$id.log" >&2; exit 1
}
api="http://127.0.0.1:$port"
node api '["api"]' "$port" "$services_core"
api_pid=${pids[-1]}
pg_pid=$(head -1 "$work/pg/data/postmaster.pid")
if [ -n "$services_core" ]; then
  # PostgreSQL's processes (and those it forks later) and Garage's threads.
  for pid in "$pg_pid" $(pgrep -P "$pg_pid") "$GARAGE_PID"; do
    taskset -a -cp "$services_core" "$pid" >/dev/null
  done
fi
tick=$(getconf CLK_TCK)

# CPU seconds PID and its live children used so far (user + system, with
# the children it reaped: a worker's ffmpeg once it exited).
cpu() {
  local total=0 p
  for p in "$1" $(pgrep -P "$1" || true); do
    [ -r "/proc/$p/stat" ] || continue
    total=$((total + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13 + $14 + $15}')))
  done
  awk -v t="$total" -v hz="$tick" 'BEGIN { printf "%.1f", t / hz }'
}
# What every process used during a run, from two snapshots "name=cpu ...".
used() {
  awk -v a="$1" -v b="$2" 'BEGIN {
    n = split(a, x, " "); split(b, y, " ")
    for (i = 1; i <= n; i++) { split(x[i], p, "="); split(y[i], q, "="); printf "%s%s %.1f s", (i > 1 ? ", " : ""), p[1], q[2] - p[2] }
  }'
}
snapshot() { # NAME=PID ...
  local pair out=""
  for pair in "$@"; do out+="${pair%%=*}=$(cpu "${pair#*=}") "; done
  echo "$out"
}

# Uploads the source; prints the asset's id once it is stored (then the
# workers up take it at once).
upload() {
  curl -fs --data-binary @"$work/source.mp4" "$api/api/uploads?filename=source.mp4" \
    | sed -n 's/.*"asset_id":"\([^"]*\)".*/\1/p'
}
stop_workers() {
  local pid
  for pid in "${workers[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  pids=("${pids[@]:0:1}")
  workers=()
}
# One round with $1 (1 or 2) worker nodes, each pinned to its core; sets
# took (seconds from stored to ready) and cpu (what each process used
# meanwhile).
run() {
  local asset t0 t1 before i
  procs=(api="$api_pid" garage="$GARAGE_PID" postgres="$pg_pid")
  for i in $(seq "$1"); do
    node "worker-$i" '["worker"]' $((port + 9 + i)) $((i - 1))
    workers+=("${pids[-1]}")
    procs+=("worker-$i=${pids[-1]}")
  done
  asset=$(upload)
  [ -n "$asset" ] || { echo "bench: upload failed" >&2; exit 1; }
  t0=$(date +%s.%N)
  before=$(snapshot "${procs[@]}")
  t1=$(ready_at "$api" "$asset")
  took=$(awk -v a="$t1" -v b="$t0" 'BEGIN { printf "%.1f", a - b }')
  cpu=$(used "$before" "$(snapshot "${procs[@]}")")
  stop_workers
}

# $ROUNDS rounds (default 3), each one worker then two; the medians of
# the times and of the ratios are printed with every round.
workers=()
rows=""
for round in $(seq "${ROUNDS:-3}"); do
  run 1; one=$took cpu_one=$cpu
  run 2; two=$took cpu_two=$cpu
  rows+="$one $two;"
  echo "bench: round $round: one worker $one s, two workers $two s" >&2
done

where="on core $services_core"
[ -n "$services_core" ] || where="on any core"
echo "${seconds} s 1080p source, default ladder, chunks of ${chunk} s, $cores cores; api node, PostgreSQL and Garage $where"
python3 - "$rows" "$cpu_one" "$cpu_two" <<'PY'
import statistics, sys
rounds = [list(map(float, r.split())) for r in sys.argv[1].split(";") if r.strip()]
ones, twos = [r[0] for r in rounds], [r[1] for r in rounds]
ratios = [a / b for a, b in rounds]
print(f"  rounds: one worker {ones} s, two workers {twos} s, speed-ups {[round(r, 2) for r in ratios]}")
print(f"  one worker  (1 core):      {statistics.median(ones):6.1f} s   CPU in the last round: {sys.argv[2]}")
print(f"  two workers (1 core each): {statistics.median(twos):6.1f} s   CPU in the last round: {sys.argv[3]}")
print(f"  speed-up: median {statistics.median(ratios):.2f}x (of the medians: {statistics.median(ones) / statistics.median(twos):.2f}x)")
PY
