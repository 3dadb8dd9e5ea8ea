#!/usr/bin/env bash
# Side-by-side: VOD packaging of one MP4 into CMAF HLS by ffmpeg (stream copy)
# and by `streamforge package` (HLS + DASH + I-frame playlists from the same
# segments), with `cp` of the same file as the copy floor. Prints the median
# wall time of RUNS runs each, the input throughput and the ratios, for two
# inputs: SECONDS_OF_MEDIA of 1080p30 H.264 + AAC, and a long one made of
# LOOPS + 1 copies of a 30 s clip (`ffmpeg -stream_loop LOOPS -c copy`; 10
# minutes by default), where the system time of writing large outputs shows.
#
#   benches/remux_vs_ffmpeg.sh            60 s and 10 min, 5 runs
#   RUNS=9 SECONDS_OF_MEDIA=120 LOOPS=0 benches/remux_vs_ffmpeg.sh
#
# Inputs are generated once (libx264 -preset ultrafast) and cached under
# target/bench-inputs/. Outputs go to a temporary directory; both tools write
# 2 s segments cut at keyframes (the inputs have a keyframe every 2 s).
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${RUNS:-5}
media_secs=${SECONDS_OF_MEDIA:-60}
loops=${LOOPS:-19}
target_dir=${CARGO_TARGET_DIR:-target}

for tool in ffmpeg ffprobe bc; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is required (scripts/setup)" >&2; exit 1; }
done

cargo build --release --quiet --bin streamforge
streamforge="$target_dir/release/streamforge"
inputs=target/bench-inputs
mkdir -p "$inputs"

# generate SECONDS PATH: SECONDS of 1080p30 H.264 + AAC, unless PATH exists.
generate() {
  [ -s "$2" ] && return
  echo "bench: generating $2" >&2
  ffmpeg -v error -y \
    -f lavfi -i "testsrc2=size=1920x1080:rate=30" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000" \
    -t "$1" -pix_fmt yuv420p \
    -c:v libx264 -preset ultrafast -g 60 -keyint_min 60 -sc_threshold 0 \
    -c:a aac -b:a 128k -ac 2 -f mp4 \
    "$2.part"
  mv "$2.part" "$2"
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# time_runs NAME COMMAND...: runs COMMAND $runs times into a fresh output
# directory each time (after syncing the last run's writes); prints the
# sorted wall times, one per line.
time_runs() {
  local name=$1; shift
  for _ in $(seq "$runs"); do
    rm -rf "${work:?}/$name"; mkdir -p "$work/$name"
    sync
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

# bench INPUT LABEL: ffmpeg, streamforge and cp on INPUT.
bench() {
  local input=$1 label=$2 bytes
  bytes=$(stat -c %s "$input")
  # Warm the page cache so every run reads the input from memory.
  cat "$input" >/dev/null
  local ffmpeg_med sf_med cp_med
  ffmpeg_med=$(time_runs ffmpeg \
    ffmpeg -v error -i "$input" -c copy -f hls -hls_segment_type fmp4 -hls_time 2 \
    -hls_playlist_type vod -hls_segment_filename "$work/ffmpeg/seg-%05d.m4s" "$work/ffmpeg/index.m3u8" | median)
  sf_med=$(time_runs sf \
    "$streamforge" package "$input" --out "$work/sf" --segment-duration 2s | median)
  cp_med=$(time_runs cp cp "$input" "$work/cp/copy.mp4" | median)
  local ffmpeg_segments sf_segments
  ffmpeg_segments=$(find "$work/ffmpeg" -name '*.m4s' | wc -l)
  sf_segments=$(find "$work/sf" -name 'seg-*.m4s' | wc -l)
  rm -rf "${work:?}"/{ffmpeg,sf,cp}
  printf 'input: %s (%.1f MB, %s of 1080p30 H.264 + AAC)\n' "$input" "$(echo "$bytes / 1000000" | bc -l)" "$label"
  printf 'median of %d runs (wall clock, page cache warm)\n' "$runs"
  printf '  %-44s %8.3f s  %8.0f MB/s  (%d segment files)\n' "ffmpeg -c copy -f hls (fmp4, 2 s)" \
    "$ffmpeg_med" "$(echo "$bytes / 1000000 / $ffmpeg_med" | bc -l)" "$ffmpeg_segments"
  printf '  %-44s %8.3f s  %8.0f MB/s  (%d segment files, HLS + DASH)\n' "streamforge package (2 s)" \
    "$sf_med" "$(echo "$bytes / 1000000 / $sf_med" | bc -l)" "$sf_segments"
  printf '  %-44s %8.3f s  %8.0f MB/s\n' "cp (the copy floor)" \
    "$cp_med" "$(echo "$bytes / 1000000 / $cp_med" | bc -l)"
  printf 'ratio ffmpeg/streamforge: %.1fx; streamforge/cp: %.2fx\n' \
    "$(echo "$ffmpeg_med / $sf_med" | bc -l)" "$(echo "$sf_med / $cp_med" | bc -l)"
}

input="$inputs/h264-aac-1080p30-${media_secs}s.mp4"
generate "$media_secs" "$input"
bench "$input" "${media_secs} s"

if [ "$loops" -gt 0 ]; then
  clip="$inputs/h264-aac-1080p30-30s.mp4"
  generate 30 "$clip"
  long="$inputs/h264-aac-1080p30-30s-x$((loops + 1)).mp4"
  if [ ! -s "$long" ]; then
    ffmpeg -v error -y -stream_loop "$loops" -i "$clip" -c copy -f mp4 "$long.part"
    mv "$long.part" "$long"
  fi
  echo
  bench "$long" "$(( (loops + 1) * 30 / 60 )) min"
fi
