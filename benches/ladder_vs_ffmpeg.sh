#!/usr/bin/env bash
# Side by side: StreamForge's ladder (one ffmpeg decoding the source once
# for every rung and the storyboard, each rung's output packaged by its own
# actor into CMAF, HLS + DASH) against one hand-written ffmpeg command
# making the same ladder (split filter, 360p/720p/1080p H.264 + AAC, fMP4
# HLS), on the same input, one after the other. Prints for both: wall time,
# CPU seconds, peak memory (of the process tree), and per rung SSIM and PSNR
# against the source scaled to the rung's size and the measured bitrate
# against the target. Then the time from an upload's last byte to "ready"
# when the upload is slower than encoding (throttled to $RATE_LIMIT/s).
#
#   benches/ladder_vs_ffmpeg.sh                  20 s 1080p30 input
#   SECONDS_OF_MEDIA=60 RATE_LIMIT=2M benches/ladder_vs_ffmpeg.sh
set -euo pipefail
cd "$(dirname "$0")/.."

media_secs=${SECONDS_OF_MEDIA:-20}
rate_limit=${RATE_LIMIT:-700K}
target_dir=${CARGO_TARGET_DIR:-target}
measure=benches/lib/measure.py
for tool in ffmpeg ffprobe curl python3; do
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

port=$((20000 + RANDOM % 20000))
"$target_dir/release/streamforge" serve --data-dir "$work/data" --listen "127.0.0.1:$port" \
  --rtmp-listen 127.0.0.1:0 --srt-listen 127.0.0.1:0 --webrtc-listen 127.0.0.1:0 --rtsp-listen 127.0.0.1:0 --rtsp-udp-ports off --tls off \
  --log-filter warn >"$work/server.log" 2>&1 &
server=$!
base="http://127.0.0.1:$port"
for _ in $(seq 50); do curl -fs "$base/healthz" >/dev/null && break; sleep 0.1; done
curl -fs "$base/healthz" >/dev/null || { echo "bench: the server did not start:" >&2; cat "$work/server.log" >&2; exit 1; }
. benches/lib/ready.sh

# $RUNS rounds (default 3; the medians are printed), each:
# 1. one ffmpeg, the same rungs and rates as the default ladder;
# 2. StreamForge: an upload at full speed, until "ready".
runs=""
for round in $(seq "${RUNS:-3}"); do
  rm -rf "$work/ffmpeg"; mkdir -p "$work/ffmpeg"
  read -r f_wall f_cpu f_peak < <(python3 "$measure" run ffmpeg -v error -y -i "$input" \
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
    "$work/ffmpeg/stream_%v.m3u8")

  cpu0=$(python3 "$measure" cpu "$server")
  python3 "$measure" watch "$server" "$work/peak" &
  watcher=$!
  t2=$(now)
  asset=$(curl -fs --data-binary @"$input" "$base/api/uploads?filename=bench.mp4" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["asset_id"])')
  t3=$(ready_at "$base" "$asset")
  cpu1=$(python3 "$measure" cpu "$server")
  kill "$watcher"; wait "$watcher" || true
  s_peak=$(cat "$work/peak")
  runs+="$f_wall $f_cpu $f_peak $(python3 -c "print($t3 - $t2, $cpu1 - $cpu0)") $s_peak;"
  echo "bench: round $round: ffmpeg $f_wall s, streamforge $(python3 -c "print(round($t3 - $t2, 2))") s" >&2
done

# Quality and bitrate of each rung, ours and the single command's.
quality=""
i=0
for rung in 360:640:800 720:1280:2500 1080:1920:5000; do
  IFS=: read -r h w kbps <<<"$rung"
  read -r s_ssim s_psnr s_kbps < <(python3 "$measure" quality "$input" "$base/vod/$asset/${h}p-v1/media.m3u8" "$w" "$h")
  read -r f_ssim f_psnr f_kbps < <(python3 "$measure" quality "$input" "$work/ffmpeg/stream_$i.m3u8" "$w" "$h")
  quality+="${h}p $kbps $s_ssim $s_psnr $s_kbps $f_ssim $f_psnr $f_kbps;"
  i=$((i + 1))
done

# 3. A throttled tus upload (one PATCH at $rate_limit/s): last byte → ready.
location=$(curl -fsi -X POST "$base/files/" -H 'Tus-Resumable: 1.0.0' -H "Upload-Length: $size" \
  -H 'Upload-Metadata: filename YmVuY2gubXA0' | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
t4=$(now)
curl -fs -X PATCH "$base$location" -H 'Tus-Resumable: 1.0.0' -H 'Upload-Offset: 0' \
  -H 'Content-Type: application/offset+octet-stream' --limit-rate "$rate_limit" \
  --data-binary @"$input" -o /dev/null
t5=$(now)
throttled=$(curl -fsI "$base$location" -H 'Tus-Resumable: 1.0.0' | tr -d '\r' | sed -n 's/^[Xx]-[Aa]sset-[Ii]d: //p')
t6=$(ready_at "$base" "$throttled")

python3 - "$runs" "$t4" "$t5" "$t6" "$size" "$media_secs" "$rate_limit" "$quality" <<'PY'
import statistics, sys
a = sys.argv[1:]
rounds = [list(map(float, r.split())) for r in a[0].split(";") if r.strip()]
f_wall, f_cpu, f_peak, s_wall, s_cpu, s_peak = (
    statistics.median(r[i] for r in rounds) for i in range(6))
f_peak, s_peak = max(r[2] for r in rounds), max(r[5] for r in rounds)
t4, t5, t6 = float(a[1]), float(a[2]), float(a[3])
size, secs, rate, quality = int(a[4]), float(a[5]), a[6], a[7]
print(f"ladder 360p/720p/1080p + AAC from a {secs:.0f} s 1080p30 clip ({size/1e6:.1f} MB), 2 cores")
print(f"medians of {len(rounds)} rounds; walls: ffmpeg {[r[0] for r in rounds]}, streamforge {[round(r[3], 2) for r in rounds]}")
print(f"                                  wall s    CPU s   peak MiB")
print(f"  one ffmpeg command (split, HLS) {f_wall:7.2f} {f_cpu:8.2f} {f_peak:9.0f}")
print(f"  streamforge upload -> ready     {s_wall:7.2f} {s_cpu:8.2f} {s_peak:9.0f}   (+ DASH, poster, storyboard)")
print(f"  streamforge / ffmpeg            {s_wall/f_wall:7.2f}x {s_cpu/f_cpu:7.2f}x")
print(f"  ready / media duration: {s_wall/secs:.2f}")
print(f"  rung   target kb/s | streamforge SSIM  PSNR dB  kb/s | ffmpeg SSIM  PSNR dB  kb/s")
for row in filter(None, quality.split(";")):
    name, target, ss, sp, sk, fs, fp, fk = row.split()
    print(f"  {name:6} {target:>11} | {ss:>16} {sp:>8} {sk:>5} | {fs:>11} {fp:>8} {fk:>5}")
print(f"  throttled upload at {rate}/s: upload took {t5-t4:.1f} s, ready {t6-t5:.2f} s after the last byte")
PY
