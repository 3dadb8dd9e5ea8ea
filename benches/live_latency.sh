#!/usr/bin/env bash
# Live latency, measured: ffmpeg pushes RTMP, RTSP with INGEST=rtsp or
# SRT (MPEG-TS) with INGEST=srt
# (testsrc2 + sine, real time, a keyframe every 2 s) to a release build;
# the script reports
#
#   - publisher start → first playable segment (the server's own clock),
#   - part latency: from the arrival of a part's last sample at ingest to
#     the part being listed and fetchable (avg / max over every part),
#   - how long a request for the preload-hinted part was held (curl),
#   - a blocking playlist reload's wait for the next part (curl).
#
#   benches/live_latency.sh                 720p25, 20 s
#   SIZE=1920x1080 RATE=30 SECONDS_OF_MEDIA=60 benches/live_latency.sh
#   INGEST=rtsp benches/live_latency.sh     RTSP push over TCP
#   INGEST=srt benches/live_latency.sh      SRT push (120 ms SRT latency)
#   INGEST=srt PES_PAYLOAD_SIZE=0 benches/live_latency.sh
#                                           one AAC frame per PES (ffmpeg's
#                                           default packs ~180 ms of audio)
#   INGEST=whip benches/live_latency.sh     WHIP from headless Chromium
#                                           (tests/peers/whip_publish.mjs:
#                                           a 320x240 canvas, H.264 + Opus;
#                                           SIZE and RATE do not apply)
set -euo pipefail
cd "$(dirname "$0")/.."

size=${SIZE:-1280x720}
rate=${RATE:-25}
media_secs=${SECONDS_OF_MEDIA:-20}
ingest=${INGEST:-rtmp}
# Chromium's canvas is what it is.
if [ "$ingest" = whip ]; then size=320x240; fi
target_dir=${CARGO_TARGET_DIR:-target}
for tool in ffmpeg curl python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is required (scripts/setup --test)" >&2; exit 1; }
done
cargo build --release --quiet --bin streamforge
data=$(mktemp -d)
log="$data/server.log"
port_http=$((20000 + RANDOM % 20000))
port_rtmp=$((port_http + 1))
port_rtsp=$((port_http + 2))
port_srt=$((port_http + 3))
STREAMFORGE_LIVE_OPEN_PUBLISH=true STREAMFORGE_LIVE_RTSP_UDP_PORTS="[0, 0]" \
  "$target_dir/release/streamforge" serve \
  --data-dir "$data" --listen "127.0.0.1:$port_http" --rtmp-listen "127.0.0.1:$port_rtmp" \
  --rtsp-listen "127.0.0.1:$port_rtsp" --srt-listen "127.0.0.1:$port_srt" --webrtc-listen 127.0.0.1:0 \
  --log-filter warn >"$log" 2>&1 &
server=$!
cleanup() { kill "$server" 2>/dev/null || true; if [ -n "${encoder:-}" ]; then kill "$encoder" 2>/dev/null || true; fi; wait 2>/dev/null || true; rm -rf "$data"; }
trap cleanup EXIT
base="http://127.0.0.1:$port_http"
for _ in $(seq 50); do curl -fs "$base/healthz" >/dev/null && break; sleep 0.1; done

if [ "$ingest" = whip ]; then
  node tests/peers/whip_publish.mjs "$base" bench - "$media_secs" >/dev/null &
else
ffmpeg -hide_banner -loglevel error -re \
  -f lavfi -i "testsrc2=size=$size:rate=$rate" -f lavfi -i "sine=frequency=440:sample_rate=48000" \
  -t "$media_secs" -c:v libx264 -preset veryfast -tune zerolatency -g $((rate * 2)) -pix_fmt yuv420p \
  -c:a aac -b:a 128k \
  $(if [ "$ingest" = rtsp ]; then
      echo -f rtsp -rtsp_transport tcp "rtsp://127.0.0.1:$port_rtsp/live/bench"
    elif [ "$ingest" = srt ]; then
      echo ${PES_PAYLOAD_SIZE:+-pes_payload_size "$PES_PAYLOAD_SIZE"} -f mpegts "srt://127.0.0.1:$port_srt?streamid=publish:live/bench&latency=120000"
    else
      echo -f flv "rtmp://127.0.0.1:$port_rtmp/live/bench"
    fi) &
fi
encoder=$!

# Wait for the publish, then the first segment (the multivariant playlist is
# held until it exists).
for _ in $(seq 100); do
  curl -fs --max-time 10 "$base/live/bench/master.m3u8" >/dev/null && break
  sleep 0.1
done
held=()
blocked=()
for _ in $(seq 20); do
  playlist=$(curl -fs "$base/live/bench/v1/media.m3u8")
  hint=$(printf '%s\n' "$playlist" | sed -n 's/^#EXT-X-PRELOAD-HINT:TYPE=PART,URI="\(.*\)"$/\1/p')
  [ -n "$hint" ] || break
  held+=("$(curl -fs -o /dev/null -w '%{time_total}' "$base/live/bench/v1/$hint")")
  msn=${hint%%.*}
  rest=${hint#*.}
  part=${rest%%.*}
  blocked+=("$(curl -fs -o /dev/null -w '%{time_total}' "$base/live/bench/v1/media.m3u8?_HLS_msn=$msn&_HLS_part=$((part + 1))")")
done
wait "$encoder" || true
encoder=
status=$(curl -fs "$base/api/live/bench")

python3 - "$status" "${held[*]}" "${blocked[*]}" "$size" "$rate" <<'PY'
import json, statistics, sys
status = json.loads(sys.argv[1])
held = [float(x) * 1000 for x in sys.argv[2].split()]
blocked = [float(x) * 1000 for x in sys.argv[3].split()]
lat = status["part_latency"]
print(f"live latency, {sys.argv[4]} @ {sys.argv[5]} fps, 2 s segments, 1/3 s parts")
print(f"  publisher start -> first playable segment: {status['first_playable_ms']} ms")
print(f"  part listed after its last sample arrived: avg {lat['avg_ms']:.2f} ms, max {lat['max_ms']:.2f} ms over {lat['parts']} parts")
if held:
    print(f"  preload-hinted part request held: median {statistics.median(held):.0f} ms, max {max(held):.0f} ms ({len(held)} requests)")
if blocked:
    print(f"  blocking reload for the next part: median {statistics.median(blocked):.0f} ms, max {max(blocked):.0f} ms")
PY
