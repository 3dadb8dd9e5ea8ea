#!/usr/bin/env bash
# StreamForge vs nginx serving the same segment files and playlist, side by
# side, on loopback: wrk (HTTP/1.1) and h2load (HTTP/2, h2c prior knowledge)
# at the same concurrency. Prints requests/s, throughput and latency
# percentiles for each, and the ratio StreamForge / nginx.
#
#   benches/http_vs_nginx.sh [seconds-per-run (default 10)] [connections (default 64)]
#
# Cases:
#   hot   one 512 KiB segment requested again and again.
#   cold  the same segment with StreamForge's memory cache turned off
#         (`--cache-bytes 0`). Since segments on local storage are served
#         from mappings of their files, not from the memory cache, hot and
#         cold take the same path in StreamForge; cold is kept to show it.
#   rr    round robin over every segment of several assets (8 x 100 x 512 KiB,
#         400 MiB), what a VOD origin sees: every request a different file
#         of a working set larger than the memory cache (256 MiB), served by
#         both servers from the page cache.
#   m3u8  a small playlist (gzip off for both, to compare like with like);
#         StreamForge serves it from its 0.5 s playlist cache.
#   m3u8gz the same playlist asked for as browsers ask (Accept-Encoding:
#         gzip): nginx compresses each answer (`gzip on`, its default level
#         1); StreamForge sends the compressed copy it made once per cached
#         copy (flate2's level 6). Both bodies are checked to decode to the
#         same playlist.
#   big   2.5 MB segments, 64 connections x 10 streams on h2c (and 64
#         connections on HTTP/1.1): the memory bound under load, with 640
#         responses in flight at once.
# Next to every StreamForge figure: its peak resident memory during the run
# (VmRSS, and the anonymous part of it: mapped file pages are page cache).
# Needs: nginx, wrk, h2load (apt-get install nginx-light wrk nghttp2-client).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
connections=${2:-64}

for tool in nginx wrk h2load; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install nginx-light wrk nghttp2-client" >&2; exit 1; }
done
# BIN=path/to/streamforge measures another build (an earlier commit).
if [ -z "${BIN:-}" ]; then
  cargo build --release --locked --bin streamforge >&2
fi
bin=${BIN:-target/release/streamforge}

work=$(mktemp -d /tmp/sf-bench.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

media="$work/data/media/assets/bench/media"
mkdir -p "$media/v1"
head -c $((512 * 1024)) /dev/urandom > "$media/v1/seg-00001.m4s"
{
  echo "#EXTM3U"; echo "#EXT-X-VERSION:7"; echo "#EXT-X-TARGETDURATION:2"
  echo "#EXT-X-PLAYLIST-TYPE:VOD"; echo '#EXT-X-MAP:URI="init.mp4"'
  for i in $(seq 1 150); do printf '#EXTINF:2.000,\nseg-%05d.m4s\n' "$i"; done
  echo "#EXT-X-ENDLIST"
} > "$media/v1/media.m3u8"
head -c $((2500 * 1000)) /dev/urandom > "$media/v1/big-00001.m4s"
rr_assets=8 rr_segments=100
: > "$work/rr-paths"
for a in $(seq 1 $rr_assets); do
  dir="$work/data/media/assets/rr$a/media/v1"
  mkdir -p "$dir"
  for i in $(seq 1 $rr_segments); do
    name=$(printf 'seg-%05d.m4s' "$i")
    head -c $((512 * 1024)) /dev/urandom > "$dir/$name"
    echo "/vod/rr$a/v1/$name" >> "$work/rr-paths"
  done
done
# Interleave the assets, so consecutive requests go to different files.
sort -t/ -k5,5 -k3,3 "$work/rr-paths" -o "$work/rr-paths"
cat > "$work/rr.lua" <<'LUA'
local paths = {}
for line in io.lines(os.getenv("RR_PATHS")) do paths[#paths + 1] = line end
local i = math.random(#paths)
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
LUA

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

nginx_port=$(free_port)
nginx_h2_port=$(free_port)
cat > "$work/nginx.conf" <<NGINX
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_requests 1000000;
  gzip on; gzip_types application/vnd.apple.mpegurl; gzip_min_length 256; gzip_vary on;
  types { application/vnd.apple.mpegurl m3u8; video/iso.segment m4s; }
  # nginx 1.22: a plain listener with http2 speaks only h2c (prior knowledge).
  server { listen 127.0.0.1:$nginx_port; location /vod/ { alias $work/nginx-vod/; } }
  server { listen 127.0.0.1:$nginx_h2_port http2; location /vod/ { alias $work/nginx-vod/; } }
}
NGINX
# nginx sees the same files at the same URLs: /vod/{asset}/... -> .../assets/{asset}/media/...
mkdir -p "$work/nginx-vod"
for dir in "$work"/data/media/assets/*; do ln -s "$dir/media" "$work/nginx-vod/$(basename "$dir")"; done
# nginx workers run as www-data: let them read the files.
chmod -R a+rX "$work"
nginx -c "$work/nginx.conf" -e "$work/nginx-error.log"

start_streamforge() { # start_streamforge CACHE_BYTES -> sets sf_port
  sf_port=$(free_port)
  "$bin" serve --listen "127.0.0.1:$sf_port" --data-dir "$work/data" \
    --cache-bytes "$1" --log-filter warn >"$work/sf.log" 2>&1 &
  sf_pid=$!
  pids+=("$sf_pid")
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$sf_port/healthz" >/dev/null && return 0
    sleep 0.1
  done
  echo "streamforge did not start:" >&2; cat "$work/sf.log" >&2; exit 1
}
stop_streamforge() { kill "$sf_pid"; wait "$sf_pid" 2>/dev/null || true; }

# Samples StreamForge's resident memory every 0.1 s while "$@" runs; prints
# the command's output, then "peak-rss-mib peak-anon-mib" on the last line.
with_rss() {
  local peak="$work/peak"
  ( max=0 anon=0
    while kill -0 "$sf_pid" 2>/dev/null; do
      read -r r a < <(awk '/^VmRSS/ {r=$2} /^RssAnon/ {a=$2} END {print r, a}' "/proc/$sf_pid/status")
      [ "${r:-0}" -gt "$max" ] && max=$r
      [ "${a:-0}" -gt "$anon" ] && anon=$a
      # Whole lines only: the sampler may be stopped at any moment.
      echo "$((max / 1024)) $((anon / 1024))" > "$peak.new" && mv "$peak.new" "$peak"
      sleep 0.1
    done ) &
  local sampler=$!
  "$@"
  kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
  echo; cat "$peak"
}

# wrk URL [connections] -> "req/s MB/s p50 p99"; the rr case cycles through $work/rr-paths.
run_wrk() {
  local script=()
  [ "$case" = rr ] && script=(-s "$work/rr.lua")
  [ "$case" = m3u8gz ] && script=(-H "Accept-Encoding: gzip")
  RR_PATHS="$work/rr-paths" wrk -t2 -c"${2:-$connections}" -d"${duration}s" --latency "${script[@]}" "$1" | awk '
    /Requests\/sec/ {rps=$2}
    /Transfer\/sec/ {t=$2; if (t ~ /GB/) {sub("GB","",t); t*=1024} else if (t ~ /KB/) {sub("KB","",t); t/=1024} else {sub("MB","",t)}}
    /^ +50%/ {p50=$2} /^ +99%/ {p99=$2}
    END {printf "%s %.1f %s %s", rps, t, p50, p99}'
}
# h2load URL [connections] -> "req/s MB/s p50(mean) max"; the rr case cycles through $work/rr-paths.
run_h2load() {
  local uris=("$1")
  [ "$case" = m3u8gz ] && uris=(-H "accept-encoding: gzip" "$1")
  if [ "$case" = rr ]; then
    sed "s|^|${1%%/vod/*}|" "$work/rr-paths" > "$work/rr-uris"
    uris=(-i "$work/rr-uris")
  fi
  h2load -D "$duration" -c"${2:-$connections}" -m10 -t2 "${uris[@]}" 2>/dev/null | awk '
    /^finished in/ {rps=$4; gsub(",","",rps); t=$6; if (t ~ /GB/) {sub("GB/s","",t); t*=1024} else if (t ~ /KB/) {sub("KB/s","",t); t/=1024} else {sub("MB/s","",t)}}
    /^time for request:/ {mean=$6; max=$5}
    END {printf "%s %.1f %s %s", rps, t, mean, max}'
}

printf '%-6s %-7s %-12s %10s %9s %9s %9s %12s\n' case proto server "req/s" "MB/s" "p50|mean" "p99|max" "rss|anon MiB"
report() { # case proto server "rps mbs a b" [rss anon]
  read -r rps mbs a b <<<"$4"
  local mem=""
  [ -n "${5:-}" ] && mem="$5|$6"
  printf '%-6s %-7s %-12s %10s %9s %9s %9s %12s\n' "$1" "$2" "$3" "$rps" "$mbs" "$a" "$b" "$mem"
}
ratio() { python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f'{a/b:.2f}' if b else 'n/a')" "$1" "$2"; }

summary=()
for case in ${CASES:-hot cold rr m3u8 m3u8gz big}; do
  case $case in
    cold|big) start_streamforge 0 ;;
    *) start_streamforge 268435456 ;;
  esac
  path=/vod/bench/v1/seg-00001.m4s
  [ "$case" = m3u8 ] || [ "$case" = m3u8gz ] && path=/vod/bench/v1/media.m3u8
  [ "$case" = rr ] && path=$(head -1 "$work/rr-paths")
  [ "$case" = big ] && path=/vod/bench/v1/big-00001.m4s
  expected=$(curl -s -o /dev/null -w '%{size_download}' "http://127.0.0.1:$nginx_port$path")
  for server_port in "$nginx_port" "$sf_port"; do
    got=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' "http://127.0.0.1:$server_port$path")
    [ "$got" = "200 $expected" ] && [ "$expected" -gt 0 ] || { echo "port $server_port answers '$got' for $path, not '200 $expected'" >&2; exit 1; }
    if [ "$case" = m3u8gz ]; then
      curl -s -D "$work/gz-headers" -o "$work/gz-body" -H 'Accept-Encoding: gzip' "http://127.0.0.1:$server_port$path"
      grep -qi '^content-encoding: gzip' "$work/gz-headers" && gzip -dc "$work/gz-body" | cmp -s - "$media/v1/media.m3u8" \
        || { echo "port $server_port does not answer $path gzipped as the playlist" >&2; exit 1; }
    fi
  done
  conns=$connections
  [ "$case" = big ] && conns=64
  for proto in h1 h2c; do
    if [ "$proto" = h1 ]; then runner=run_wrk; np=$nginx_port; else runner=run_h2load; np=$nginx_h2_port; fi
    ng=$($runner "http://127.0.0.1:$np$path" "$conns")
    out=$(with_rss "$runner" "http://127.0.0.1:$sf_port$path" "$conns")
    sf=$(head -1 <<<"$out")
    read -r rss anon <<<"$(tail -1 <<<"$out")"
    report "$case" "$proto" nginx "$ng"
    report "$case" "$proto" streamforge "$sf" "$rss" "$anon"
    summary+=("$case $proto streamforge/nginx req/s ratio: $(ratio "${sf%% *}" "${ng%% *}")  (peak RSS $rss MiB, anonymous $anon MiB)")
  done
  stop_streamforge
done
printf '%s\n' "${summary[@]}"
echo "machine: $(nproc) cores; load generator on the same cores; ${duration}s per run; $connections connections (big: 64)"
