#!/usr/bin/env bash
# Side by side: StreamForge's ladder (one supervised ffmpeg per rung + the
# CMAF packager, HLS + DASH) against one hand-written ffmpeg command making
# the same ladder (split filter, 360p/720p/1080p H.264 + AAC, fMP4 HLS), on
# the same input, one after the other. Prints both wall times and the
# ratio, then the time from an upload's last byte to "ready" when the
# upload is throttled (processing runs while the bytes arrive).
#
#   benches/ladder_vs_ffmpeg.sh                  30 s 1080p30 input
#   SECONDS_OF_MEDIA=60 RATE_LIMIT=4M benches/ladder_vs_ffmpeg.sh
set -euo pipefail
cd "$(dirname "$0")/.."

media_secs=${SECONDS_OF_MEDIA:-30}
rate_limit=${RATE_LIMIT:-2M}
target_dir=${CARGO_TARGET_DIR:-target}
for tool in ffmpeg curl python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is required (scripts/setup --test)" >&2; exit 1; }
done
cargo build --release --quiet --bin streamforge

inputs=target/bench-inputs
input="$inputs/ladder-1080p30-${media_secs}s.mp4"
mkdir -p "$inputs"
if [ ! -s "$input" ]; then
  echo "bench: generating $input" >&2
  ffmpeg -v error -y -f lavfi -i "testsrc2=size=1920x1080:rate=30" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000" -t "$media_secs" \
    -c:v libx264 -preset veryfast -crf 20 -pix_fmt yuv420p -c:a aac -b:a 192k \
    -movflags +faststart -f mp4 "$input.part"
  mv "$input.part" "$input"
fi
size=$(stat -c %s "$input")
work=$(mktemp -d)
server=
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
now() { date +%s.%N; }

# 1. One ffmpeg, the same rungs and rates as the default ladder.
mkdir -p "$work/ffmpeg"
t0=$(now)
ffmpeg -v error -y -i "$input" \
  -filter_complex "[0:v]split=3[a][b][c];[a]scale=-2:360[v360];[b]scale=-2:720[v720];[c]scale=-2:1080[v1080]" \
  -map "[v360]" -map "[v720]" -map "[v1080]" -map 0:a \
  -c:v libx264 -preset veryfast -profile:v high -pix_fmt yuv420p \
  -force_key_frames "expr:gte(t,n_forced*2)" -sc_threshold 0 \
  -b:v:0 800k -maxrate:v:0 856k -bufsize:v:0 1200k \
  -b:v:1 2500k -maxrate:v:1 2675k -bufsize:v:1 3750k \
  -b:v:2 5000k -maxrate:v:2 5350k -bufsize:v:2 7500k \
  -c:a aac -b:a 192k -ac 2 -ar 48000 \
  -f hls -hls_time 4 -hls_playlist_type vod -hls_segment_type fmp4 \
  -var_stream_map "v:0 v:1 v:2 a:0" -master_pl_name master.m3u8 \
  "$work/ffmpeg/stream_%v.m3u8"
t1=$(now)

# 2. StreamForge: upload at full speed, time to "ready".
port=$((20000 + RANDOM % 20000))
"$target_dir/release/streamforge" serve --data-dir "$work/data" --listen "127.0.0.1:$port" \
  --rtmp-listen 127.0.0.1:0 --log-filter warn >"$work/server.log" 2>&1 &
server=$!
base="http://127.0.0.1:$port"
for _ in $(seq 50); do curl -fs "$base/healthz" >/dev/null && break; sleep 0.1; done
wait_ready() { # ASSET → prints the time it became ready
  while :; do
    status=$(curl -fs "$base/api/assets/$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
    case "$status" in ready) now; return ;; failed) echo "bench: asset $1 failed" >&2; exit 1 ;; esac
    sleep 0.05
  done
}
t2=$(now)
asset=$(curl -fs --data-binary @"$input" "$base/api/uploads?filename=bench.mp4" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["asset_id"])')
t3=$(wait_ready "$asset")

# 3. A throttled tus upload (one PATCH at $rate_limit/s): last byte → ready.
location=$(curl -fsi -X POST "$base/files/" -H 'Tus-Resumable: 1.0.0' -H "Upload-Length: $size" \
  -H 'Upload-Metadata: filename YmVuY2gubXA0' | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
t4=$(now)
curl -fs -X PATCH "$base$location" -H 'Tus-Resumable: 1.0.0' -H 'Upload-Offset: 0' \
  -H 'Content-Type: application/offset+octet-stream' --limit-rate "$rate_limit" \
  --data-binary @"$input" -o /dev/null
t5=$(now)
throttled=$(curl -fsI "$base$location" -H 'Tus-Resumable: 1.0.0' | tr -d '\r' | sed -n 's/^[Xx]-[Aa]sset-[Ii]d: //p')
t6=$(wait_ready "$throttled")

python3 - "$t0" "$t1" "$t2" "$t3" "$t4" "$t5" "$t6" "$size" "$media_secs" "$rate_limit" <<'PY'
import sys
t = [float(x) for x in sys.argv[1:8]]
size, secs, rate = int(sys.argv[8]), sys.argv[9], sys.argv[10]
ffmpeg, ours = t[1] - t[0], t[3] - t[2]
print(f"ladder 360p/720p/1080p + AAC from a {secs} s 1080p30 clip ({size/1e6:.1f} MB), 2 cores")
print(f"  one ffmpeg command (split, HLS fMP4):      {ffmpeg:6.2f} s")
print(f"  streamforge upload -> ready (HLS + DASH): {ours:6.2f} s   ratio ffmpeg/streamforge {ffmpeg/ours:.2f}")
print(f"  throttled upload at {rate}/s: upload took {t[5]-t[4]:.1f} s, ready {t[6]-t[5]:.2f} s after the last byte")
PY
