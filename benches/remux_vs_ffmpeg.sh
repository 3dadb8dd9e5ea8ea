#!/usr/bin/env bash
# Side-by-side: VOD packaging of one MP4 into CMAF HLS by ffmpeg (stream copy)
# and by `streamforge package` (HLS + DASH + I-frame playlists from the same
# segments). Prints the median wall time of RUNS runs each, the input
# throughput and the ratio ffmpeg/streamforge.
#
#   benches/remux_vs_ffmpeg.sh            60 s 1080p30 H.264 + AAC, 5 runs
#   RUNS=9 SECONDS_OF_MEDIA=120 benches/remux_vs_ffmpeg.sh
#
# The input is generated once (libx264 -preset ultrafast) and cached under
# target/bench-inputs/. Outputs go to a temporary directory; both tools write
# 2 s segments cut at keyframes (the input has a keyframe every 2 s).
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${RUNS:-5}
media_secs=${SECONDS_OF_MEDIA:-60}
target_dir=${CARGO_TARGET_DIR:-target}

for tool in ffmpeg ffprobe; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is required (scripts/setup)" >&2; exit 1; }
done

cargo build --release --quiet --bin streamforge
streamforge="$target_dir/release/streamforge"

inputs=target/bench-inputs
input="$inputs/h264-aac-1080p30-${media_secs}s.mp4"
mkdir -p "$inputs"
if [ ! -s "$input" ]; then
  echo "bench: generating $input" >&2
  ffmpeg -v error -y \
    -f lavfi -i "testsrc2=size=1920x1080:rate=30" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000" \
    -t "$media_secs" -pix_fmt yuv420p \
    -c:v libx264 -preset ultrafast -g 60 -keyint_min 60 -sc_threshold 0 \
    -c:a aac -b:a 128k -ac 2 -f mp4 \
    "$input.part"
  mv "$input.part" "$input"
fi
bytes=$(stat -c %s "$input")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# time_runs NAME COMMAND...: runs COMMAND $runs times into a fresh output
# directory each time; prints the sorted wall times, one per line.
time_runs() {
  local name=$1; shift
  for _ in $(seq "$runs"); do
    rm -rf "$work/$name"; mkdir -p "$work/$name"
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null
    end=$(date +%s.%N)
    echo "$end - $start" | bc -l
  done | sort -g
}

median() { # median of sorted numbers on stdin
  awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# Warm the page cache so both read the input from memory.
cat "$input" >/dev/null

ffmpeg_med=$(time_runs ffmpeg \
  ffmpeg -v error -i "$input" -c copy -f hls -hls_segment_type fmp4 -hls_time 2 \
  -hls_playlist_type vod -hls_segment_filename "$work/ffmpeg/seg-%05d.m4s" "$work/ffmpeg/index.m3u8" | median)
sf_med=$(time_runs sf \
  "$streamforge" package "$input" --out "$work/sf" --segment-duration 2s | median)

ffmpeg_segments=$(find "$work/ffmpeg" -name '*.m4s' | wc -l)
sf_segments=$(find "$work/sf" -name 'seg-*.m4s' | wc -l)

printf 'input: %s (%.1f MB, %s s of 1080p30 H.264 + AAC)\n' "$input" "$(echo "$bytes / 1000000" | bc -l)" "$media_secs"
printf 'median of %d runs (wall clock, page cache warm)\n' "$runs"
printf '  %-44s %8.3f s  %8.0f MB/s  (%d segment files)\n' "ffmpeg -c copy -f hls (fmp4, 2 s)" \
  "$ffmpeg_med" "$(echo "$bytes / 1000000 / $ffmpeg_med" | bc -l)" "$ffmpeg_segments"
printf '  %-44s %8.3f s  %8.0f MB/s  (%d segment files, HLS + DASH)\n' "streamforge package (2 s)" \
  "$sf_med" "$(echo "$bytes / 1000000 / $sf_med" | bc -l)" "$sf_segments"
printf 'ratio ffmpeg/streamforge: %.1fx\n' "$(echo "$ffmpeg_med / $sf_med" | bc -l)"
