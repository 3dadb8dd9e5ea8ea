#!/usr/bin/env bash
# Memory per idle keep-alive connection: N clients each send one request
# (GET /healthz, HTTP/1.1 keep-alive) and keep the connection open; the
# server's RSS before and after gives the cost of one idle connection.
# (The server closes connections idle longer than http.idle_timeout; the
# script raises it for the measurement.)
#
#   benches/idle_connections.sh             10000 connections
#   CONNECTIONS=2000 benches/idle_connections.sh
set -euo pipefail
cd "$(dirname "$0")/.."
connections=${CONNECTIONS:-10000}
target_dir=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet --bin streamforge
work=$(mktemp -d)
server=
cleanup() { kill $server 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
ulimit -n $((connections + 1024))
port=$((20000 + RANDOM % 20000))
"$target_dir/release/streamforge" serve --data-dir "$work/data" --listen "127.0.0.1:$port" \
  --rtmp-listen 127.0.0.1:0 --srt-listen 127.0.0.1:0 --webrtc-listen 127.0.0.1:0 --idle-timeout 10m --log-filter warn >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
rss() { awk '/VmRSS/ {print $2}' "/proc/$server/status"; }
before=$(rss)
python3 - "$port" "$connections" "$server" "$before" <<'PY'
import asyncio, sys
port, n, pid, before = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
request = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: keep-alive\r\n\r\n".encode()

async def one(held):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0].split(b":")[1])
    await reader.readexactly(length)
    held.append(writer)

async def main():
    held = []
    for start in range(0, n, 500):
        await asyncio.gather(*(one(held) for _ in range(start, min(n, start + 500))))
    await asyncio.sleep(2)
    rss = int([l for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")][0].split()[1])
    print(f"{len(held)} idle keep-alive HTTP/1.1 connections")
    print(f"  server RSS {before / 1024:.1f} MiB -> {rss / 1024:.1f} MiB: {(rss - before) * 1024 / len(held) / 1024:.1f} KiB per connection")
    for w in held:
        w.close()

asyncio.run(main())
PY
