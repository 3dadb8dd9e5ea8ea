#!/usr/bin/env bash
# StreamForge vs nginx serving the same segment files and playlist, side by
# side, on loopback: wrk (HTTP/1.1) and h2load (HTTP/2, h2c prior knowledge)
# at the same concurrency. Prints requests/s, throughput and latency
# percentiles for each, and the ratio StreamForge / nginx.
#
#   benches/http_vs_nginx.sh [seconds-per-run (default 10)] [connections (default 64)]
#
# Cases:
#   hot   one 512 KiB segment requested again and again: StreamForge serves it
#         from its in-memory cache, nginx with sendfile from the page cache.
#   cold  StreamForge with its cache turned off (every request streams from
#         storage), nginx unchanged.
#   m3u8  a small playlist (gzip off for both, to compare like with like).
# Needs: nginx, wrk, h2load (apt-get install nginx-light wrk nghttp2-client).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
connections=${2:-64}

for tool in nginx wrk h2load; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install nginx-light wrk nghttp2-client" >&2; exit 1; }
done
cargo build --release --locked --bin streamforge >&2
bin=target/release/streamforge

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
  types { application/vnd.apple.mpegurl m3u8; video/iso.segment m4s; }
  # nginx 1.22: a plain listener with http2 speaks only h2c (prior knowledge).
  server { listen 127.0.0.1:$nginx_port; location /vod/bench/ { alias $media/; } }
  server { listen 127.0.0.1:$nginx_h2_port http2; location /vod/bench/ { alias $media/; } }
}
NGINX
# nginx workers run as www-data: let them read the files.
chmod -R a+rX "$work"
nginx -c "$work/nginx.conf" -e "$work/nginx-error.log"
expected=$(stat -c %s "$media/v1/seg-00001.m4s")

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

# wrk URL -> "req/s MB/s p50 p99"
run_wrk() {
  wrk -t2 -c"$connections" -d"${duration}s" --latency "$1" | awk '
    /Requests\/sec/ {rps=$2}
    /Transfer\/sec/ {t=$2; if (t ~ /GB/) {sub("GB","",t); t*=1024} else if (t ~ /KB/) {sub("KB","",t); t/=1024} else {sub("MB","",t)}}
    /^ +50%/ {p50=$2} /^ +99%/ {p99=$2}
    END {printf "%s %.1f %s %s", rps, t, p50, p99}'
}
# h2load URL -> "req/s MB/s p50(mean) max"
run_h2load() {
  h2load -D "$duration" -c"$connections" -m10 -t2 "$1" 2>/dev/null | awk '
    /^finished in/ {rps=$4; gsub(",","",rps); t=$6; if (t ~ /GB/) {sub("GB/s","",t); t*=1024} else if (t ~ /KB/) {sub("KB/s","",t); t/=1024} else {sub("MB/s","",t)}}
    /^time for request:/ {mean=$6; max=$5}
    END {printf "%s %.1f %s %s", rps, t, mean, max}'
}

printf '%-6s %-7s %-12s %12s %10s %10s %10s\n' case proto server "req/s" "MB/s" "p50|mean" "p99|max"
report() { # case proto server "rps mbs a b"
  read -r rps mbs a b <<<"$4"
  printf '%-6s %-7s %-12s %12s %10s %10s %10s\n' "$1" "$2" "$3" "$rps" "$mbs" "$a" "$b"
}
ratio() { python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f'{a/b:.2f}' if b else 'n/a')" "$1" "$2"; }

summary=()
for case in hot cold m3u8; do
  if [ "$case" = cold ]; then start_streamforge 0; else start_streamforge 268435456; fi
  path=/vod/bench/v1/seg-00001.m4s
  [ "$case" = m3u8 ] && path=/vod/bench/v1/media.m3u8
  for server_port in "$nginx_port" "$sf_port"; do
    got=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' "http://127.0.0.1:$server_port/vod/bench/v1/seg-00001.m4s")
    [ "$got" = "200 $expected" ] || { echo "port $server_port answers '$got', not '200 $expected'" >&2; exit 1; }
  done
  for proto in h1 h2c; do
    if [ "$proto" = h1 ]; then runner=run_wrk; np=$nginx_port; else runner=run_h2load; np=$nginx_h2_port; fi
    ng=$($runner "http://127.0.0.1:$np$path")
    sf=$($runner "http://127.0.0.1:$sf_port$path")
    report "$case" "$proto" nginx "$ng"
    report "$case" "$proto" streamforge "$sf"
    summary+=("$case $proto streamforge/nginx req/s ratio: $(ratio "${sf%% *}" "${ng%% *}")")
  done
  stop_streamforge
done
printf '%s\n' "${summary[@]}"
echo "machine: $(nproc) cores; load generator on the same cores; ${duration}s per run; $connections connections"
